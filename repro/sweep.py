"""Divergence sweep (beyond the paper): final accuracy of GRPO, RKL, KDRL and TGPO-Reg against the lab's divergence
knob — the share of the teacher's training steps written in the other style, from the in-family teacher (0) to the
most divergent one — with 95% intervals over seeds. The x axis is the *measured* divergence of each knob's teacher
from the student on the student's own rollouts (per-token KL(teacher‖student), and how often the teacher's argmax
differs from the sampled token on content and on style positions), read from the teacher's committed regime file
(``results/lab/regime_<student>_<teacher>_<split>.csv``, made by ``python -m repro.regime``), not the knob.

    nox -s reproduce_sweep [-- --profile lab|smoke --preset P --seeds N]
    python -m repro.sweep --redraw                   # redraw from the committed runs

Outputs in ``results/<profile>/``: ``sweep.png``, ``sweep.csv``, ``sweep_runs.json``, ``sweep_manifest.json``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from repro import options, plots, regime, table_config, tables
from repro.session import start

NAME = "sweep"
SUFFIXES = (".png", ".csv", "_runs.json", "_manifest.json")


def main(argv: list[str] | None = None) -> int:
    session = start(NAME, __doc__, argv, SUFFIXES, profiles=table_config.LAB_PROFILES, rows=knob_rows)
    if isinstance(session, int):
        return session
    table, stem, out_dir = session.table, session.stem, session.out_dir
    measured = knob_divergence(table)  # before any run: a missing regime file must not wait for the runs

    records = session.run("Divergence sweep")

    frame = sweep_frame(records, table, measured)
    plot(frame, table, out_dir / f"{stem}.png", n_seeds=len(session.plan.seeds))
    if session.redrawn(records, [f"{stem}.png"]):
        return 0
    frame.round(3).to_csv(out_dir / f"{stem}.csv", index=False)
    session.finish(records)
    print(frame.round(2).to_string(index=False))
    return 0


def knob_rows(table: table_config.Table) -> list[table_config.Row]:
    """Every row of the config with every teacher of the knob (variant = the knob value)."""
    knob = table.get("knob")
    if not knob or not all(isinstance(k, dict) and {"value", "teacher"} <= set(k) for k in knob):
        raise table_config.UsageError(f"config {table.path}: 'knob' must be a list of {{value, teacher}}")
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


def plot(frame: pd.DataFrame, table: table_config.Table, out: Path, n_seeds: int) -> None:
    """Final accuracy per method against the knob teachers' measured KL(teacher‖student) (95% t band over seeds,
    inside 0..100%; each point labelled with its knob value), and the measured content and style disagreement at each
    teacher."""
    from tgpo.objectives import METHODS

    x_label = "measured KL(teacher‖student) per token\non the student's rollouts"
    averages = list(table.averages)
    fig, axes, legend_ax = plots.grid(len(averages) + 1)
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
    for column, style in (("content disagreement (%)", "-o"), ("style disagreement (%)", "--s")):
        axes[-1].plot(teachers[X_AXIS], teachers[column], style, color="black", lw=1.8,
                      label=column.removesuffix(" (%)"))
    axes[-1].set_ylabel("teacher argmax ≠ sampled token (%)")
    axes[-1].set_title("measured disagreement by position class")
    axes[-1].legend(fontsize=8)
    axes[-1].set_xlabel(x_label)
    axes[-1].grid(alpha=0.3)
    plots.legend(fig, list(handles.values()), list(handles), legend_ax)
    fig.suptitle(f"Divergence sweep — {plots.model_label(table.student)}, teachers from in-family (knob 0) to "
                 "cross-family")
    plots.save_figure(fig, out, caption=f"Mean over n = {n_seeds} seeds per point; band: 95% t interval over seeds, "
                      "kept inside 0–100%. Point labels: the knob (share of the teacher's pre-training steps in the "
                      "content-moving style).", legend_below=legend_ax is None)


def _label_knobs(ax, frame: pd.DataFrame) -> None:
    """Write each knob value at its teacher's x position, inside the top of the panel (above it is the title)."""
    for _, row in frame.drop_duplicates("knob").iterrows():
        ax.annotate(f"knob {row.knob:g}", (row[X_AXIS], 0.985), xycoords=("data", "axes fraction"), ha="center",
                    va="top", fontsize=7, color="0.35", rotation=90)


if __name__ == "__main__":
    sys.exit(options.cli(main))
