"""Training-curve figures with seed bands (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

METRIC_LABELS = {
    "reward": "training reward (accuracy)",
    "completions/mean_length": "response length (tokens)",
    "grad_norm": "gradient norm",
    "entropy": "entropy (nats)",
    "teacher/argmax_agreement": "teacher–student argmax agreement",
    "teacher/argmax_agreement/content": "argmax agreement: content tokens (digits)",
    "teacher/argmax_agreement/style": "argmax agreement: style tokens",
    "guidance_weight": "guidance weight λ",
    "guidance/grad_share": "guidance share of the gradient ‖λ∇G‖ / ‖∇PG‖ (final hidden states)",
}
#: Line styles of the metrics that share one panel (e.g. content and style agreement).
STYLES = ("-", "--", ":", "-.")

Panel = str | Sequence[str]  # one metric, or several drawn in one panel with different line styles


def curves_frame(records: list[dict]) -> pd.DataFrame:
    """Long frame of every record's curves: ``label, seed, step, <metrics...>``."""
    frames = []
    for rec in records:
        if rec.get("curves"):
            df = pd.DataFrame(rec["curves"])
            df["label"] = rec["label"]
            df["seed"] = rec["seed"]
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _metrics(panel: Panel) -> list[str]:
    return [panel] if isinstance(panel, str) else list(panel)


def _title(panel: Panel) -> str:
    metrics = _metrics(panel)
    if len(metrics) == 1:
        return METRIC_LABELS.get(metrics[0], metrics[0])
    parts = [f"{m.rsplit('/', 1)[-1]} ({STYLES[i % len(STYLES)]})" for i, m in enumerate(metrics)]
    return f"{METRIC_LABELS.get(metrics[0].rsplit('/', 1)[0], metrics[0])}: " + ", ".join(parts)


def plot_curves(curves: pd.DataFrame, panels: Sequence[Panel], title: str, out: Path, smooth: int = 5,
                labels: list[str] | None = None) -> Path:
    """One panel per entry of ``panels``; a line per label (mean over seeds, rolling mean of ``smooth`` steps) with a
    band of ±1 std over seeds. A panel of several metrics draws each in its own line style. A panel whose metrics no
    run logged says so instead of disappearing."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    if labels is None:
        labels = list(dict.fromkeys(curves["label"])) if not curves.empty else []
    colors = {label: f"C{i}" for i, label in enumerate(labels)}
    for ax, panel in zip(axes[0], panels):
        drawn = False
        for style, metric in zip(STYLES, _metrics(panel)):
            if metric not in curves.columns:
                continue
            for label in labels:
                sub = curves[curves.label == label].dropna(subset=[metric])
                if sub.empty:
                    continue
                per_seed = sub.pivot_table(index="step", columns="seed", values=metric)
                per_seed = per_seed.rolling(smooth, min_periods=1).mean()
                mean, std = per_seed.mean(axis=1), per_seed.std(axis=1).fillna(0.0)
                ax.plot(mean.index, mean.values, style, color=colors[label], lw=1.6,
                        label=label if style == STYLES[0] else None)
                ax.fill_between(mean.index, (mean - std).values, (mean + std).values, color=colors[label], alpha=0.15)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "not logged by these runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(_title(panel), fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, frameon=False)
    n_seeds = curves.groupby("label").seed.nunique().max() if not curves.empty else 0
    fig.suptitle(f"{title}  (mean over {n_seeds} seed(s), band = ±1 std, {smooth}-step rolling mean)", fontsize=11)
    return save_figure(fig, out)


def save_figure(fig, out: Path) -> Path:
    """Lay out, write as PNG and free a figure."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
