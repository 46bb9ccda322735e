"""Training-curve figures with seed bands (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

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
    "guidance_weight": "guidance weight λ",
}


def curves_frame(records: list[dict], label_key: str = "method") -> pd.DataFrame:
    """Long frame of every record's curves: ``label, seed, step, <metrics...>``."""
    frames = []
    for rec in records:
        if rec.get("curves"):
            df = pd.DataFrame(rec["curves"])
            df["label"] = rec.get("extra", {}).get("row") or rec[label_key]
            df["seed"] = rec["seed"]
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_curves(curves: pd.DataFrame, metrics: list[str], title: str, out: Path, smooth: int = 5,
                labels: list[str] | None = None) -> Path:
    """One panel per metric; a line per label (mean over seeds, rolling mean of ``smooth`` steps) with a
    band of ±1 std over seeds."""
    metrics = [m for m in metrics if m in curves.columns]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6), squeeze=False)
    labels = labels or list(dict.fromkeys(curves["label"]))
    for ax, metric in zip(axes[0], metrics):
        for label in labels:
            sub = curves[curves.label == label].dropna(subset=[metric])
            if sub.empty:
                continue
            per_seed = sub.pivot_table(index="step", columns="seed", values=metric)
            per_seed = per_seed.rolling(smooth, min_periods=1).mean()
            mean, std = per_seed.mean(axis=1), per_seed.std(axis=1).fillna(0.0)
            (line,) = ax.plot(mean.index, mean.values, label=label, lw=1.6)
            ax.fill_between(mean.index, (mean - std).values, (mean + std).values, color=line.get_color(), alpha=0.18)
        ax.set_title(METRIC_LABELS.get(metric, metric), fontsize=10)
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
