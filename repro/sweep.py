"""Divergence sweep (beyond the paper): final accuracy of GRPO, RKL, KDRL and TGPO-Reg against the lab's divergence
knob — the share of the teacher's training steps written in the other style, from the in-family teacher (0) to the
most divergent one — with 95% intervals over seeds. The x axis is the *measured* divergence of each knob's teacher
from the student on the student's own rollouts (per-token KL(teacher‖student), and how often the teacher's argmax
differs from the sampled token on content and on style positions), read from the teacher's committed regime file
(``results/lab/regime_<student>_<teacher>_<split>.csv``, made by ``python -m repro.regime``), not the knob.

    nox -s reproduce_sweep [-- --profile lab|smoke --preset P --seeds N]
    python -m repro.sweep --redraw                   # redraw from the committed runs

Runs of every method at one knob share their seeds and RL data order (GRPO reads no teacher: its one run per seed
serves every knob), so each method's difference from GRPO at a knob is paired by seed (:func:`paired_frame`).

Outputs in ``results/<profile>/``: ``sweep.png``, ``sweep.csv``, ``sweep_paired.csv`` (method − GRPO per knob),
``sweep_runs.json``, ``sweep_manifest.json``. ``--redraw`` rewrites ``sweep.png`` and ``sweep_paired.csv`` (both
drawn from the committed runs alone) and notes them in the manifest.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from repro import options, plots, regime, stats, table_config, tables
from repro.session import start

NAME = "sweep"
SUFFIXES = (".png", ".csv", "_paired.csv", ".md", "_runs.json", "_manifest.json")


def main(argv: list[str] | None = None) -> int:
    session = start(NAME, __doc__, argv, SUFFIXES, profiles=table_config.LAB_PROFILES, rows=knob_rows)
    if isinstance(session, int):
        return session
    table, stem, out_dir = session.table, session.stem, session.out_dir
    measured = knob_divergence(table)  # before any run: a missing regime file must not wait for the runs

    records = session.run("Divergence sweep")

    frame = sweep_frame(records, table, measured)
    paired = paired_frame(records, table, measured)
    plot(frame, paired, table, out_dir / f"{stem}.png", n_seeds=len(session.plan.seeds))
    paired.round(3).to_csv(out_dir / f"{stem}_paired.csv", index=False)  # from the runs alone, like the figure
    (out_dir / f"{stem}.md").write_text(render(frame, paired, table, len(session.plan.seeds)))  # likewise
    if session.redrawn(records, [f"{stem}.png", f"{stem}_paired.csv", f"{stem}.md"]):
        return 0
    frame.round(3).to_csv(out_dir / f"{stem}.csv", index=False)
    session.finish(records)
    print(frame.round(2).to_string(index=False))
    print(paired.round(2).to_string(index=False))
    return 0


def knob_rows(table: table_config.Table) -> list[table_config.Row]:
    """Every row of the config with every teacher of the knob (variant = the knob value)."""
    knob = table.get("knob")
    if not knob or not all(isinstance(k, dict) and {"value", "teacher"} <= set(k) for k in knob):
        raise table_config.UsageError(f"config {table.path}: 'knob' must be a list of {{value, teacher}}")
    if not any(row.method == table_config.REFERENCE_METHOD for row in table.rows):  # every method is paired with it
        raise table_config.UsageError(f"config {table.path}: the sweep needs a {table_config.REFERENCE_METHOD} row")
    return [replace(row, teacher=k["teacher"], variant=knob_variant(k), key=f"{row.key}@{knob_variant(k)}",
                    label=f"{row.label} (knob {knob_variant(k)})") for k in knob for row in table.rows]


def knob_variant(knob: dict) -> str:
    """A knob entry's value as its rows' variant (``0.5``): the key by which records meet their teacher's
    measured divergence (:func:`knob_divergence`)."""
    return str(float(knob["value"]))


#: The regime files the sweep reads are the lab's (the smoke profile trains the same lab models).
REGIME_PROFILE = "lab"
#: The measured divergence on the figure's x axis (a key of :data:`repro.regime.DIVERGENCE`).
X_AXIS = "KL(teacher‖student) per token"


def knob_divergence(table: table_config.Table) -> dict[str, dict[str, float]]:
    """Knob value (as the rows' variant) -> its teacher's measured divergence from the student on the table's RL
    split (:func:`repro.regime.divergence`)."""
    return {knob_variant(k): regime.divergence(REGIME_PROFILE, table.student, k["teacher"], table.rl_split)
            for k in table.get("knob")}


def sweep_frame(records: list[dict], table: table_config.Table,
                measured: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per (method, knob): each column's and average's mean and 95% half-width over seeds, the step-1 argmax
    agreement between teacher and student, and the knob teacher's measured divergence (``measured``:
    :func:`knob_divergence`)."""
    labels = list(dict.fromkeys(rec["label"] for rec in records))
    summary = tables.summary_table(records, table.columns, table.averages, labels)
    first = {rec["label"]: rec for rec in records}
    agreement = {}
    for rec in records:
        curve = rec.get("curves") or [{}]
        if "teacher/argmax_agreement" in curve[0]:
            agreement.setdefault(rec["variant"], []).append(curve[0]["teacher/argmax_agreement"])
    out = summary.reset_index(names="label")
    out.insert(0, "knob", [float(first[label]["variant"]) for label in out.label])
    out.insert(0, "method", [first[label]["method"] for label in out.label])
    out["argmax agreement (step 1)"] = [
        sum(agreement[v]) / len(agreement[v]) if agreement.get(v) else None for v in (first[label]["variant"] for label in out.label)]
    for column in regime.DIVERGENCE:
        out[column] = [measured[first[label]["variant"]][column] for label in out.label]
    return out


def paired_frame(records: list[dict], table: table_config.Table,
                 measured: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per (knob, method other than GRPO): method − GRPO at that knob in the headline average (the config's first
    ``averages`` entry), paired by seed — the mean of the per-seed differences with its 95% t interval over the seeds
    both have (:func:`repro.stats.paired_t_interval`) and their number — beside the knob teacher's measured
    divergence (``measured``: :func:`knob_divergence`). Columns ``method, knob, label, Δ <headline> mean/low/high,
    n_seeds`` and :data:`X_AXIS`."""
    headline = next(iter(table.averages))
    wide = tables.wide_scores(records, table.columns, table.averages)[headline]  # (row, seed) -> headline, in %
    out = []
    for variant in dict.fromkeys(rec["variant"] for rec in records):
        rows = {rec["label"]: rec["method"] for rec in records if rec["variant"] == variant}
        grpo = wide.xs(next(label for label, m in rows.items() if m == table_config.REFERENCE_METHOD), level="row")
        for label, method in rows.items():
            if method == table_config.REFERENCE_METHOD:
                continue
            mine = wide.xs(label, level="row")
            seeds = mine.index.intersection(grpo.index)  # paired by seed: the same seed and RL data order
            diff = stats.paired_t_interval(mine[seeds].to_numpy(), grpo[seeds].to_numpy())
            out.append({"method": method, "knob": float(variant), "label": label, f"Δ {headline} mean": diff.mean,
                        f"Δ {headline} low": diff.low, f"Δ {headline} high": diff.high, "n_seeds": diff.n,
                        X_AXIS: measured[variant][X_AXIS]})
    return pd.DataFrame(out)


def render(frame: pd.DataFrame, paired: pd.DataFrame, table: table_config.Table, n_seeds: int) -> str:
    """The headline average per method and knob (mean ± 95% half-width over seeds), then method − GRPO paired by seed
    (mean [95% interval]), one column per knob headed by the knob teacher's measured KL."""
    headline = next(iter(table.averages))
    knob_kl = dict(zip(frame.knob, frame[X_AXIS]))
    heading = {knob: f"{knob:g} ({kl:.2f})" for knob, kl in knob_kl.items()}
    name = {m: label.rsplit(" (knob ", 1)[0] for m, label in zip(frame.method, frame.label)}
    scores = frame.assign(cell=[tables.cell(m, h) for m, h in zip(frame[f"{headline} mean"], frame[f"{headline} ci"])])
    scores = scores.pivot(index="method", columns="knob", values="cell")
    diffs = paired.assign(cell=[f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]" for m, lo, hi in
                                zip(paired[f"Δ {headline} mean"], paired[f"Δ {headline} low"], paired[f"Δ {headline} high"])])
    diffs = diffs.pivot(index="method", columns="knob", values="cell")
    methods = list(dict.fromkeys(frame.method))

    def shown(grid: pd.DataFrame) -> str:
        grid = grid.loc[[m for m in methods if m in grid.index]].rename(index=name, columns=heading)
        return grid.rename_axis(index="", columns=None).to_markdown(disable_numparse=True)

    return (f"# {table['title']} ({n_seeds} seeds)\n\n{headline} (%), mean ± 95% half-width over seeds; columns: "
            f"the knob and, in brackets, the knob teacher's measured {X_AXIS} on the student's rollouts (its regime "
            f"file). GRPO reads no teacher: one run per seed serves every knob.\n\n{shown(scores)}\n\n"
            f"## Method − GRPO, paired by seed (points, mean [95% t interval])\n\n{shown(diffs)}\n\n"
            "Measured by this repo (`python -m repro.sweep`; every column in sweep.csv and sweep_paired.csv).\n")


def plot(frame: pd.DataFrame, paired: pd.DataFrame, table: table_config.Table, out: Path, n_seeds: int) -> None:
    """Final accuracy per method against the knob teachers' measured KL(teacher‖student) (95% t band over seeds,
    inside 0..100%; each point labelled with its knob value), each method − GRPO in the headline average against the
    same axis (``paired``: :func:`paired_frame`; paired 95% t bars over seeds, a zero line), and the measured content
    and style disagreement at each teacher."""
    from tgpo.objectives import METHODS

    x_label = "measured KL(teacher‖student) per token\non the student's rollouts"
    averages = list(table.averages)
    fig, axes, legend_ax = plots.grid(len(averages) + 2)
    handles = {}
    for ax, avg in zip(axes, averages):
        for method in dict.fromkeys(frame.method):
            sub = frame[frame.method == method].sort_values(X_AXIS)
            mean, half = sub[f"{avg} mean"], sub[f"{avg} ci"].fillna(0.0)
            style = plots.method_style(method)
            (line,) = ax.plot(sub[X_AXIS], mean, marker=style["marker"], color=style["color"], lw=1.8, markersize=7)
            low, high = plots.clip_interval(mean, half, 0.0, 100.0)
            ax.fill_between(sub[X_AXIS], low, high, color=style["color"], alpha=0.15, lw=0)
            handles.setdefault(METHODS[method].label, line)
        _label_knobs(ax, frame)
        ax.set_xlabel(x_label)
        ax.set_ylabel("greedy pass@1 (%)")
        ax.set_title(avg)
        ax.grid(alpha=0.3)
    teachers = frame.drop_duplicates("knob").sort_values(X_AXIS)
    disagreement = axes[len(averages)]
    for column, style in (("content disagreement (%)", "-o"), ("style disagreement (%)", "--s")):
        disagreement.plot(teachers[X_AXIS], teachers[column], style, color="black", lw=1.8,
                          label=column.removesuffix(" (%)"))
    disagreement.set_ylabel("teacher argmax ≠ sampled token (%)")
    disagreement.set_title("measured disagreement by position class")
    disagreement.legend(fontsize=8)
    disagreement.set_xlabel(x_label)
    disagreement.grid(alpha=0.3)
    # last: with the lab's two averages (three panels a row) it sits under the first average's panel, on its x range
    _plot_paired(axes[-1], paired, frame, averages[0], x_label)
    axes[-1].set_xlim(axes[0].get_xlim())
    plots.legend(fig, list(handles.values()), list(handles), legend_ax)
    fig.suptitle(f"Divergence sweep — {plots.model_label(table.student)}, teachers from in-family (knob 0) to "
                 "cross-family")
    plots.save_figure(fig, out, caption=f"Mean over n = {n_seeds} seeds per point; band: 95% t interval over seeds, "
                      "kept inside 0–100%; method − GRPO: paired 95% t interval over seeds, its points of one knob "
                      "set slightly apart. Point labels: the knob (share of the teacher's pre-training steps in the "
                      "content-moving style).", legend_below=legend_ax is None)


#: Sideways spread of one knob's method − GRPO points, as a share of the x range (their bars would overlap).
PAIRED_DODGE = 0.012


def _plot_paired(ax, paired: pd.DataFrame, frame: pd.DataFrame, headline: str, x_label: str) -> None:
    """Each method − GRPO in ``headline`` (:func:`paired_frame`) with its paired interval as error bars, against the
    measured divergence, with a zero line."""
    column = f"Δ {headline}"
    methods = list(dict.fromkeys(paired.method))
    span = float(frame[X_AXIS].max() - frame[X_AXIS].min()) or 1.0
    for i, method in enumerate(methods):
        sub = paired[paired.method == method].sort_values(X_AXIS)
        mean = sub[f"{column} mean"]
        bars = [(mean - sub[f"{column} low"]).fillna(0.0), (sub[f"{column} high"] - mean).fillna(0.0)]
        style = plots.method_style(method)
        ax.errorbar(sub[X_AXIS] + (i - (len(methods) - 1) / 2) * PAIRED_DODGE * span, mean, yerr=bars,
                    marker=style["marker"], color=style["color"], lw=1.5, markersize=6, capsize=3)
    ax.axhline(0.0, color="black", lw=1.0)  # no knob labels: they would cover the bars (the panel above has them)
    ax.set_xlabel(x_label)
    ax.set_ylabel("method − GRPO (points)")
    ax.set_title(f"method − GRPO, {headline} (paired)")
    ax.grid(alpha=0.3)


def _label_knobs(ax, frame: pd.DataFrame) -> None:
    """Write each knob value at its teacher's x position, inside the top of the panel (above it is the title)."""
    for _, row in frame.drop_duplicates("knob").iterrows():
        ax.annotate(f"knob {row.knob:g}", (row[X_AXIS], 0.985), xycoords=("data", "axes fraction"), ha="center",
                    va="top", fontsize=7, color="0.35", rotation=90)


if __name__ == "__main__":
    sys.exit(options.cli(main))
