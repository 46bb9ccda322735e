"""Figures for slides (matplotlib, Agg backend: no display needed).

One look in every figure: each method has one colour and one marker, read from the registry's method list
(:data:`tgpo.objectives.METHODS`), so GRPO is the same colour in Table 1's curves, Figure 4 and the sweep; rows of
one method that differ in a setting (a teacher, a schedule) get shades and line styles of that colour. Figures are
16:9 (a slide), grids have at most 3 panels a row, every panel has a y-axis label, and legends sit outside the
data (in a grid's empty cell, or below it). Curves are means over seeds with a 95% t interval over seeds as the band;
the caption says how many seeds. Bands and error bars of a share (rewards, agreement, accuracy) stay inside
0..100%. Models are named for people: "student (135k params)", "cross-family teacher".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: A slide's size (16:9, inches) and the largest number of panels in a row.
SLIDE = (13.33, 7.5)
MAX_COLUMNS = 3
FONT = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 11, "xtick.labelsize": 11,
        "ytick.labelsize": 11, "figure.titlesize": 15}
COLORS = [mcolors.to_hex(c) for c in plt.get_cmap("tab10").colors]
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")
BASE_STYLE = {"color": "#555555", "marker": "."}
#: Line styles of the rows of one method (variants), and of the metrics that share one panel.
STYLES = ("-", "--", ":", "-.")
GLYPHS = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dot"}

#: Per metric: the panel's title and its y-axis label.
METRICS = {
    "reward": ("training reward", "share of correct rollouts"),
    "completions/mean_length": ("response length", "tokens per response"),
    "grad_norm": ("gradient norm", "‖g‖ before clipping"),
    "entropy": ("policy entropy", "nats per token"),
    "teacher/argmax_agreement": ("teacher–student argmax agreement", "share of response tokens"),
    "teacher/argmax_agreement/content": ("argmax agreement", "share of response tokens"),
    "teacher/argmax_agreement/style": ("argmax agreement", "share of response tokens"),
    "guidance_weight": ("guidance weight λ", "λ"),
    "guidance/grad_share": ("guidance share of the gradient", "‖λ∇G‖ / ‖∇PG‖ (final hidden states)"),
}
#: Metrics that are shares: bands are kept inside [0, 1].
SHARES = ("reward", "teacher/argmax_agreement")
#: Metrics whose axis starts at 0 (a near-constant length must not look like a trend).
FROM_ZERO = ("completions/mean_length",)

Panel = str | Sequence[str]  # one metric, or several drawn in one panel with different line styles


# ------------------------------------------------------------------------------------------ styles and names
def method_style(method: str) -> dict:
    """``{"color", "marker"}`` of a method: its place in the registry's list (the untrained student: grey)."""
    from tgpo.objectives import METHODS

    names = list(METHODS)
    if method not in names:
        return dict(BASE_STYLE)
    i = names.index(method)
    return {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)]}


def shade(color: str, i: int, n: int) -> str:
    """The ``i``-th of ``n`` shades of ``color`` (darkest first; the colour itself when ``n`` is 1)."""
    if n <= 1:
        return color
    rgb = np.array(mcolors.to_rgb(color))
    t = -0.35 + 0.8 * i / (n - 1)  # darker ... lighter
    out = rgb * (1 + t) if t < 0 else rgb + (1 - rgb) * t
    return mcolors.to_hex(np.clip(out, 0, 1))


def row_styles(rows: Sequence[tuple[str, str, str | None]]) -> dict[str, dict]:
    """Per label, the drawing style of rows ``(label, method, variant)``: the method's colour and marker; the rows of
    one method get shades and line styles of it, in the order given."""
    by_method: dict[str, list[str]] = {}
    for label, method, _ in rows:
        by_method.setdefault(method, []).append(label)
    styles = {}
    for label, method, _ in rows:
        siblings = by_method[method]
        i = siblings.index(label)
        base = method_style(method)
        styles[label] = {"color": shade(base["color"], i, len(siblings)), "marker": base["marker"],
                         "linestyle": STYLES[i % len(STYLES)] if len(siblings) > 1 else "-"}
    return styles


def record_styles(records: list[dict], labels: Sequence[str] | None = None) -> dict[str, dict]:
    """:func:`row_styles` of the rows of ``records`` (in ``labels``' order when given)."""
    first = {}
    for rec in records:
        first.setdefault(rec["label"], rec)
    order = list(labels) if labels is not None else list(first)
    return row_styles([(label, first[label]["method"], first[label].get("variant")) for label in order if label in first])


def parameter_count(name: str) -> int | None:
    """Parameters of a stored lab model (or a model folder), counted from its safetensors header (no weights load)."""
    from safetensors import safe_open

    from repro.lab_runner import model_dir

    path = model_dir(name) / "model.safetensors"
    if not path.exists():
        return None
    with safe_open(str(path), "np") as fh:
        return sum(int(np.prod(fh.get_slice(key).get_shape())) for key in fh.keys())


#: How people call the lab's models (the registry names are identifiers).
MODEL_NAMES = {"student": "student", "student_small": "small student", "teacher_in": "in-family teacher",
               "teacher_cross": "cross-family teacher"}


def model_label(name: str | None, params: bool = True) -> str:
    """``"student (135k params)"``, ``"cross-family teacher"``, ``"teacher with 50% cross-family steps"``."""
    if not name:
        return "no teacher"
    human = MODEL_NAMES.get(name)
    if human is None and name.startswith("teacher_t"):
        human = f"teacher with {float(name.removeprefix('teacher_t')):.0%} cross-family steps"
    human = human or name
    count = parameter_count(name) if params else None
    return f"{human} ({count / 1000:.0f}k params)" if count else human


def setting(student: str, teacher: str | None) -> str:
    """``"student (135k params) under the cross-family teacher"``: a figure's models, for its title."""
    return f"{model_label(student)}" + (f" under the {model_label(teacher, params=False)}" if teacher else "")


# ------------------------------------------------------------------------------------------ layout
def grid(n_panels: int, legend_cell: bool = True):
    """A 16:9 figure with at most :data:`MAX_COLUMNS` panels a row; returns ``(fig, panel axes, legend axes or
    None)``. A free cell of the last row holds the legend; without one the legend goes below the grid."""
    plt.rcParams.update(FONT)
    cols = min(MAX_COLUMNS, n_panels)
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=SLIDE, squeeze=False)
    flat = list(axes.flat)
    panels, spare = flat[:n_panels], flat[n_panels:]
    legend_ax = spare[0] if spare and legend_cell else None
    for ax in spare:
        ax.axis("off")
    return fig, panels, legend_ax


def legend(fig, handles, labels, legend_ax=None, title: str | None = None) -> None:
    """The figure's legend: in ``legend_ax`` (an empty grid cell) or centred below the panels."""
    if legend_ax is not None:
        legend_ax.legend(handles, labels, loc="center", frameon=False, title=title)
    else:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False, title=title,
                   bbox_to_anchor=(0.5, 0.045))  # above the caption line


def save_figure(fig, out: Path, caption: str | None = None, legend_below: bool = False) -> Path:
    """Lay out (room for the title, a caption and a legend below), write as PNG and free a figure."""
    bottom = (0.12 if legend_below else 0.0) + (0.05 if caption else 0.0)
    if caption:
        fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=11, wrap=True)
    fig.tight_layout(rect=(0, bottom, 1, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def clip_interval(mean, half, low: float, high: float):
    """``(mean - half, mean + half)`` clipped to ``[low, high]`` (an interval of a share never leaves 0..100%)."""
    return np.clip(mean - half, low, high), np.clip(mean + half, low, high)


#: Fewest seeds for a band: with 2 seeds the 95% t interval is ±12.7 standard errors, wider than the panel.
MIN_BAND_SEEDS = 3


def seeds_caption(n_seeds: Sequence[int], smooth: int | None = None) -> str:
    """The caption of a figure of means over seeds (``n_seeds``: the number of seeds of each row)."""
    lo, hi = min(n_seeds, default=0), max(n_seeds, default=0)
    n = f"{lo}" if lo == hi else f"{lo}–{hi}"
    if lo >= MIN_BAND_SEEDS:
        text = f"Mean over n = {n} seeds per row; band: 95% t interval over seeds."
    elif hi > 1:
        text = (f"Mean over n = {n} seeds per row; no band: too few seeds for a useful 95% t interval "
                f"(see the {MIN_BAND_SEEDS}+-seed figures).")
    else:
        text = "One seed per row: no band (one run shows no seed-to-seed variation)."
    return text + (f" Curves: {smooth}-step rolling mean." if smooth else "")


# ------------------------------------------------------------------------------------------ training curves
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


def _title(panel: Panel) -> tuple[str, str]:
    metrics = _metrics(panel)
    title, ylabel = METRICS.get(metrics[0], (metrics[0], metrics[0]))
    if len(metrics) > 1:
        title += ": " + ", ".join(f"{m.rsplit('/', 1)[-1]} ({GLYPHS[STYLES[i % len(STYLES)]]})"
                                  for i, m in enumerate(metrics))
    return title, ylabel


def mean_band(per_seed: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Mean over the columns (seeds) and the half-width of its 95% t interval (0 with one seed)."""
    from scipy import stats as sps

    from repro.stats import LEVEL

    n = per_seed.notna().sum(axis=1)
    mean = per_seed.mean(axis=1)
    sd = per_seed.std(axis=1, ddof=1)
    t = pd.Series(sps.t.ppf(0.5 + LEVEL / 2, np.maximum(n - 1, 1)), index=per_seed.index)
    half = (t * sd / np.sqrt(n)).where(n >= MIN_BAND_SEEDS, 0.0).fillna(0.0)
    return mean, half


def plot_curves(curves: pd.DataFrame, panels: Sequence[Panel], title: str, out: Path, smooth: int = 5,
                labels: list[str] | None = None, styles: dict[str, dict] | None = None) -> Path:
    """One panel per entry of ``panels``; a line per label (mean over seeds, rolling mean of ``smooth`` steps) with a
    95% t band over seeds, in ``styles`` (:func:`record_styles`; default: colours in label order). A panel of
    several metrics draws each in its own line style. A panel whose metrics no run logged says so."""
    if labels is None:
        labels = list(dict.fromkeys(curves["label"])) if not curves.empty else []
    styles = styles or {label: {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)],
                                "linestyle": "-"} for i, label in enumerate(labels)}
    fig, axes, legend_ax = grid(len(panels))
    handles = {}
    for ax, panel in zip(axes, panels):
        drawn = False
        metrics = _metrics(panel)
        for j, metric in enumerate(metrics):
            if metric not in curves.columns:
                continue
            for label in labels:
                sub = curves[curves.label == label].dropna(subset=[metric])
                if sub.empty:
                    continue
                per_seed = sub.pivot_table(index="step", columns="seed", values=metric)
                per_seed = per_seed.rolling(smooth, min_periods=1).mean()
                mean, half = mean_band(per_seed)
                style = styles[label]
                linestyle = STYLES[j % len(STYLES)] if len(metrics) > 1 else style["linestyle"]
                (line,) = ax.plot(mean.index, mean.values, linestyle=linestyle, color=style["color"], lw=1.8,
                                  marker=style["marker"], markevery=max(len(mean) // 6, 1), markersize=6)
                low, high = (clip_interval(mean, half, 0.0, 1.0) if metric.startswith(SHARES)
                             else (mean - half, mean + half))
                ax.fill_between(mean.index, low, high, color=style["color"], alpha=0.15, lw=0)
                if j == 0:
                    handles.setdefault(label, line)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "not logged by these runs", ha="center", va="center", transform=ax.transAxes)
        panel_title, ylabel = _title(panel)
        ax.set_title(panel_title)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("optimizer step")
        if metrics[0] in FROM_ZERO and drawn:
            ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
        ax.grid(alpha=0.3)
    legend(fig, list(handles.values()), list(handles), legend_ax)
    n_seeds = curves.groupby("label").seed.nunique().tolist() if not curves.empty else []
    fig.suptitle(title)
    return save_figure(fig, out, caption=seeds_caption(n_seeds, smooth), legend_below=legend_ax is None)
