"""Figure 5: the guidance-weight schedule ablation — constant weight, linear decay reaching 0 at two thirds of
training (the paper's), linear decay reaching 0 at the end, and no guidance (TGPO-Reg, cross-family teacher).

    nox -s reproduce_figure5 [-- --profile lab|smoke --preset P --seeds N]

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
    summary.round(3).to_csv(out_dir / f"{stem}.csv", index_label="schedule")
    plot(records, table, summary, out_dir / f"{stem}.png")
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
    """Final accuracy per schedule (bars with 95% intervals), training reward, and each schedule's λ(k)."""
    import matplotlib.pyplot as plt

    from tgpo.objectives import guidance_weight

    labels = table.labels
    names = [row.variant for row in table.rows]
    fig, (bars, curves_ax) = plt.subplots(1, 2, figsize=(12, 4.2))
    averages = list(table.averages)
    width = 0.8 / len(averages)
    for i, avg in enumerate(averages):
        xs = [j + (i - (len(averages) - 1) / 2) * width for j in range(len(labels))]
        bars.bar(xs, summary.loc[labels, f"{avg} mean"], width, yerr=summary.loc[labels, f"{avg} ci"].fillna(0.0),
                 capsize=3, label=avg)
    bars.set_xticks(range(len(labels)), names, rotation=12, fontsize=8)
    bars.set_ylabel("greedy pass@1 (%)")
    bars.set_title("final accuracy by schedule (error bar: 95% t interval over seeds)", fontsize=10)
    bars.legend(fontsize=8, frameon=False)
    frame = plots.curves_frame(records)
    for label, name in zip(labels, names):
        sub = frame[frame.label == label].pivot_table(index="step", columns="seed", values="reward")
        mean = sub.rolling(5, min_periods=1).mean().mean(axis=1)
        curves_ax.plot(mean.index, mean.values, label=name, lw=1.5)
    curves_ax.set_xlabel("optimizer step")
    curves_ax.set_ylabel("training reward (5-step rolling mean over seeds)")
    curves_ax.set_title("training reward", fontsize=10)
    curves_ax.legend(fontsize=8, frameon=False, loc="lower right")
    inset = curves_ax.inset_axes([0.08, 0.62, 0.34, 0.33])
    steps = range(1, table.trainer["max_steps"] + 1)
    for row in table.rows:
        t = {"guidance_min": 0.0, **table.trainer, **row.trainer}
        inset.plot(steps, [guidance_weight(k, t["guidance_weight"], t["guidance_decay"], t["guidance_min"])
                           for k in steps], lw=1.2)
    inset.set_title("schedule λ(k)", fontsize=7)
    inset.tick_params(labelsize=6)
    fig.suptitle(f"Figure 5 — guidance-weight schedule ablation (TGPO-Reg, student {table.student}, "
                 f"teacher {table.teacher})", fontsize=11)
    plots.save_figure(fig, out)


if __name__ == "__main__":
    sys.exit(options.cli(main))
