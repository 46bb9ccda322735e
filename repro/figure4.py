"""Figure 4 (and its smaller-student twin, Figure 6): training curves of the registry's methods with curves (TGPO-Reg,
TGPO-Adv, RKL, KDRL, LUFFY, GRPO; :func:`curve_methods`) with the cross-family teacher (the runs of Tables 1 and 2):
reward, response length, gradient norm, and two panels of mechanism — the guidance term's share of the gradient, and
teacher–student argmax agreement on content tokens (digits) and on style tokens.

    nox -s reproduce_figure4 [-- --profile lab|smoke --preset P --seeds N]
    python -m repro.figure4 --redraw [--seeds 6]     # redraw from the committed runs (figure4/6 or Tables 1/2 records)

Outputs in ``results/<profile>/``: ``figure4.png``, ``figure6.png`` and their ``_runs.json`` and ``_manifest.json``.
"""

from __future__ import annotations

import sys

from repro import options, planning, plots, redraw, table_config
from repro.manifest import Manifest, save_runs
from repro.session import archive

NAME = "figure4"
FIGURES = {"figure4": "table1", "figure6": "table2"}  # figure -> the table whose runs it plots
SUFFIXES = (".png", "_runs.json", "_manifest.json")
PANELS = ["reward", "completions/mean_length", "grad_norm", "guidance/grad_share",
          ["teacher/argmax_agreement/content", "teacher/argmax_agreement/style"]]


def main(argv: list[str] | None = None) -> int:
    args = options.parse_args(NAME, __doc__, argv, profiles=table_config.LAB_PROFILES, config=False)
    tables = {figure: table_config.load_table(args.profile, name) for figure, name in FIGURES.items()}
    stems = {figure: options.output_stem(figure, args, table) for figure, table in tables.items()}
    plans = {figure: planning.plan_runs(table, args, rows=table.select(curve_methods()))
             for figure, table in tables.items()}
    if args.dry_run:
        return max(planning.print_plan(plan) for plan in plans.values())
    if args.redraw:  # from committed records: nothing trains, only the figures (and their manifests) are written
        out_dir = options.output_dir(args)
    else:
        for plan in plans.values():
            planning.check_ready(plan)
        out_dir = archive(options.output_dir(args), [stem + s for stem in stems.values() for s in SUFFIXES])

    for figure, plan in plans.items():
        table, stem = tables[figure], stems[figure]
        manifest = Manifest(NAME, args, table, plan.seeds)
        if args.redraw:
            source, records = redraw.committed_records(plan, args, out_dir, stem)
        else:
            records = planning.run_plan(plan, args, desc=f"{figure} ({args.profile}, {args.preset})")
        labels = [row.label for row in plan_rows(plan)]
        plots.plot_curves(plots.curves_frame(records), PANELS,
                          f"Figure {figure.removeprefix('figure')} — {plots.setting(table.student, table.teacher)}, "
                          f"preset {args.preset}", out_dir / f"{stem}.png", labels=labels,
                          styles=plots.record_styles(records, labels))
        if args.redraw:
            redraw.note(manifest, out_dir, stem, records, source, [f"{stem}.png"])
        else:
            save_runs(records, out_dir, stem)
            manifest.write(out_dir, stem, records)
        print(f"[{NAME}] wrote {out_dir / (stem + '.png')}")
    return 0


def curve_methods() -> list[str]:
    """The methods whose training curves the figures plot, in the registry's order (the legend's): every registered
    method with ``curves`` set (``tgpo.objectives.Method``; the authors' KDRL variant has none)."""
    from tgpo.objectives import METHODS

    return [name for name, spec in METHODS.items() if spec.curves]


def plan_rows(plan: planning.Plan) -> list[table_config.Row]:
    """The plan's rows in the order of :func:`curve_methods` (the legend's order)."""
    order = curve_methods()
    rows = plan.table.select(order)
    return sorted(rows, key=lambda row: order.index(row.method))


if __name__ == "__main__":
    sys.exit(options.cli(main))
