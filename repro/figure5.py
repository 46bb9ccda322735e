"""Figure 5: the guidance-weight schedule ablation — constant weight, linear decay reaching 0 at two thirds of
training (the paper's), linear decay reaching 0 at the end, and no guidance (TGPO-Reg, cross-family teacher).

    nox -s reproduce_figure5 [-- --profile lab|smoke --preset P --seeds N]
    python -m repro.figure5 --redraw [--seeds 6]     # redraw from the committed runs

Outputs in ``results/<profile>/``: ``figure5.png``, ``figure5.csv`` and ``figure5.md`` (scores with 95% intervals
per schedule, and each schedule's paired difference from the paper's, same seeds), ``figure5_runs.json``,
``figure5_manifest.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from repro import options, plots, table_config, tables
from repro.session import start

NAME = "figure5"
SUFFIXES = (".png", ".csv", ".md", "_runs.json", "_manifest.json")


def main(argv: list[str] | None = None) -> int:
    session = start(NAME, __doc__, argv, SUFFIXES, profiles=table_config.LAB_PROFILES)
    if isinstance(session, int):
        return session
    table, stem, out_dir = session.table, session.stem, session.out_dir

    reference = table_config.reference_label(table)  # checked before any training
    if reference is None:
        raise table_config.UsageError(f"{table.path}: reference_variant (the schedule the others are paired against) is not set")
    records = session.run("Figure 5")
    summary = tables.summary_table(records, table.columns, table.averages, table.labels, reference=reference)
    plot(records, table, summary, out_dir / f"{stem}.png")
    if session.redrawn(records, [f"{stem}.png"]):
        return 0
    summary.round(3).to_csv(out_dir / f"{stem}.csv", index_label="schedule")
    text = "\n\n".join(part for part in [
        f"# {table['title']} ({table.profile} profile, preset {session.args.preset}, student {table.student}, "
        f"teacher {table.teacher})",
        "Greedy pass@1 (%), mean ± half-width of the 95% interval: Student's t over seeds (over problems for a row "
        "with one run).",
        tables.scores_markdown(summary),
        f"## Paired difference from {reference} (percentage points, same seeds, ± half-width of the 95% t interval)",
        tables.differences_markdown(summary, reference),
        tables.detectability_note(summary, next(iter(table.averages)), reference),
        "Measured by this repo (see the manifest for how each row was made).",
    ] if part) + "\n"
    (out_dir / f"{stem}.md").write_text(text)
    session.finish(records)
    print(text)
    return 0


def plot(records: list[dict], table: table_config.Table, summary, out: Path) -> None:
    """Final accuracy per schedule (bars with 95% intervals, kept inside 0..100%), training reward, and each
    schedule's λ(k), one style per schedule in all three panels."""
    import numpy as np

    from tgpo.objectives import guidance_weight

    labels = table.labels
    names = {row.label: row.variant for row in table.rows}
    styles = plots.row_styles([(row.label, row.method, row.variant) for row in table.rows])
    fig, (bars, curves_ax, schedule_ax), _ = plots.grid(3)
    averages = list(table.averages)
    width = 0.8 / len(averages)
    hatches = ("", "//", "..", "xx")
    for i, avg in enumerate(averages):
        xs = np.arange(len(labels)) + (i - (len(averages) - 1) / 2) * width
        mean = summary.loc[labels, f"{avg} mean"].to_numpy(dtype=float)
        half = summary.loc[labels, f"{avg} ci"].fillna(0.0).to_numpy(dtype=float)
        low, high = plots.clip_interval(mean, half, 0.0, 100.0)
        bars.bar(xs, mean, width, yerr=[mean - low, high - mean], capsize=3, hatch=hatches[i % len(hatches)],
                 color=[styles[label]["color"] for label in labels], edgecolor="white")
        for x in xs:
            bars.text(x, 1, avg.split()[0], rotation=90, ha="center", va="bottom", fontsize=9, color="white")
    bars.set_xticks(range(len(labels)), [names[label] for label in labels], rotation=15, fontsize=10)
    bars.set_ylim(0, 100)
    bars.set_ylabel("greedy pass@1 (%)")
    bars.set_title("final accuracy (bar: " + ", ".join(
        f"{'plain' if not hatches[i % len(hatches)] else 'hatched'} = {avg}" for i, avg in enumerate(averages)) + ")",
        fontsize=11)
    frame = plots.curves_frame(records)
    handles = []
    for label in labels:
        per_seed = frame[frame.label == label].pivot_table(index="step", columns="seed", values="reward")
        mean, half = plots.mean_band(per_seed.rolling(5, min_periods=1).mean())
        style = styles[label]
        (line,) = curves_ax.plot(mean.index, mean.values, color=style["color"], linestyle=style["linestyle"],
                                 marker=style["marker"], markevery=max(len(mean) // 6, 1), lw=1.8)
        low, high = plots.clip_interval(mean, half, 0.0, 1.0)
        curves_ax.fill_between(mean.index, low, high, color=style["color"], alpha=0.12, lw=0)
        handles.append(line)
    curves_ax.set_xlabel("optimizer step")
    curves_ax.set_ylabel("share of correct rollouts")
    curves_ax.set_title("training reward")
    curves_ax.grid(alpha=0.3)
    steps = range(1, table.trainer["max_steps"] + 1)
    for row in table.rows:
        t = {"guidance_min": 0.0, **table.trainer, **row.trainer}
        style = styles[row.label]
        schedule_ax.plot(steps, [guidance_weight(k, t["guidance_weight"], t["guidance_decay"], t["guidance_min"])
                                 for k in steps], color=style["color"], linestyle=style["linestyle"], lw=1.8)
    schedule_ax.set_xlabel("optimizer step k")
    schedule_ax.set_ylabel("guidance weight λ(k)")
    schedule_ax.set_title("schedule")
    schedule_ax.grid(alpha=0.3)
    plots.legend(fig, handles, [names[label] for label in labels], title="schedule")
    n_seeds = frame.groupby("label").seed.nunique().tolist() if not frame.empty else []
    fig.suptitle(f"Figure 5 — guidance-weight schedules of TGPO-Reg, {plots.setting(table.student, table.teacher)}")
    plots.save_figure(fig, out, caption=plots.seeds_caption(n_seeds, smooth=5) + " Error bars: 95% t interval over "
                      "seeds, kept inside 0–100%.", legend_below=True)


if __name__ == "__main__":
    sys.exit(options.cli(main))
