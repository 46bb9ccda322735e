"""Divergence sweep (beyond the paper): final accuracy of GRPO, RKL, KDRL and TGPO-Reg against the lab's divergence
knob — the share of the teacher's training steps written in the other style, from the in-family teacher (0) to the
most divergent one — with 95% intervals over seeds, and the measured teacher–student argmax agreement on the
student's own rollouts at each point.

    nox -s reproduce_sweep [-- --profile lab|smoke --preset P --seeds N]
    python -m repro.sweep --redraw                   # redraw from the committed runs

Outputs in ``results/<profile>/``: ``sweep.png``, ``sweep.csv``, ``sweep_runs.json``, ``sweep_manifest.json``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from repro import options, plots, table_config, tables
from repro.session import start

NAME = "sweep"
SUFFIXES = (".png", ".csv", "_runs.json", "_manifest.json")


def main(argv: list[str] | None = None) -> int:
    session = start(NAME, __doc__, argv, SUFFIXES, profiles=table_config.LAB_PROFILES, rows=knob_rows)
    if isinstance(session, int):
        return session
    table, stem, out_dir = session.table, session.stem, session.out_dir

    records = session.run("Divergence sweep")

    frame = sweep_frame(records, table)
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
    return [replace(row, teacher=k["teacher"], variant=str(float(k["value"])), key=f"{row.key}@{float(k['value'])}",
                    label=f"{row.label} (knob {float(k['value'])})") for k in knob for row in table.rows]


def sweep_frame(records: list[dict], table: table_config.Table) -> pd.DataFrame:
    """Per (method, knob): each column's and average's mean and 95% half-width over seeds, and the step-1 argmax
    agreement between teacher and student."""
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
    return out


def plot(frame: pd.DataFrame, table: table_config.Table, out: Path, n_seeds: int) -> None:
    """Final accuracy against the knob per method (95% t band over seeds, inside 0..100%), and the measured
    teacher–student agreement at each knob value."""
    from tgpo.objectives import METHODS

    averages = list(table.averages)
    fig, axes, legend_ax = plots.grid(len(averages) + 1)
    handles = {}
    for ax, avg in zip(axes, averages):
        for method in dict.fromkeys(frame.method):
            sub = frame[frame.method == method].sort_values("knob")
            mean, half = sub[f"{avg} mean"], sub[f"{avg} ci"].fillna(0.0)
            style = plots.method_style(method)
            (line,) = ax.plot(sub.knob, mean, marker=style["marker"], color=style["color"], lw=1.8, markersize=7)
            low, high = plots.clip_interval(mean, half, 0.0, 100.0)
            ax.fill_between(sub.knob, low, high, color=style["color"], alpha=0.15, lw=0)
            handles.setdefault(METHODS[method].label, line)
        ax.set_xlabel("divergence knob: share of the teacher's steps\nin the cross-family style")
        ax.set_ylabel("greedy pass@1 (%)")
        ax.set_title(avg)
        ax.grid(alpha=0.3)
    agree = frame.dropna(subset=["argmax agreement (step 1)"]).groupby("knob")["argmax agreement (step 1)"].mean()
    axes[-1].plot(agree.index, agree.values, marker="s", color="black", lw=1.8)
    axes[-1].set_xlabel("divergence knob")
    axes[-1].set_ylabel("share of the student's tokens\nthat are the teacher's argmax")
    axes[-1].set_title("measured agreement (step 1)")
    axes[-1].grid(alpha=0.3)
    plots.legend(fig, list(handles.values()), list(handles), legend_ax)
    fig.suptitle(f"Divergence sweep — {plots.model_label(table.student)}, teachers from in-family (0) to "
                 "cross-family")
    plots.save_figure(fig, out, caption=f"Mean over n = {n_seeds} seeds per point; band: 95% t interval over seeds, "
                      "kept inside 0–100%.", legend_below=legend_ax is None)


if __name__ == "__main__":
    sys.exit(options.cli(main))
