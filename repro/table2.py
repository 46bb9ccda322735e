"""Table 2: Table 1's rows and columns for the smaller student (lab: ``student_small``; paper: Qwen2.5-Math-1.5B),
with 95% intervals and paired differences from GRPO.

    nox -s reproduce_table2 [-- --profile lab|smoke|paper --preset P --seeds N]
    python -m repro.table2 --profile lab

Outputs in ``results/<profile>/``: ``table2.csv``, ``table2.md``, ``table2_runs.json``, ``table2_curves.png`` (lab) and
``table2_manifest.json`` (``table2_<preset>_<N>seeds.*`` for a non-default preset or seed count).
"""

from __future__ import annotations

import sys

from repro import _lib, plots

NAME = "table2"
SUFFIXES = (".csv", ".md", "_runs.json", "_curves.png", "_manifest.json")
CURVES = ["reward", "completions/mean_length", "grad_norm", "entropy"]


def main(argv: list[str] | None = None) -> int:
    args = _lib.parse_args(NAME, __doc__, argv)
    table = _lib.load_table(args.profile, NAME)
    stem = _lib.output_stem(NAME, args, table)
    plan = _lib.plan_runs(table, args, stem=stem)
    if args.dry_run:
        return _lib.print_plan(plan)
    _lib.check_ready(plan)
    out_dir = _lib.archive(_lib.output_dir(args), [stem + s for s in SUFFIXES])
    manifest = _lib.Manifest(NAME, args, table, plan.seeds)

    records = _lib.run_plan(plan, args, desc=f"{table['title']} ({args.profile}, {args.preset})")

    print(_lib.write_method_table(records, table, args, out_dir, stem))
    if plan.lab:
        plots.plot_curves(plots.curves_frame(records), CURVES, f"{table['title']}: training curves ({args.profile}, "
                          f"{args.preset})", out_dir / f"{stem}_curves.png")
    _lib.save_runs(records, out_dir, stem)
    manifest.write(out_dir, stem, records)
    print(f"[{NAME}] wrote {stem}.* to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(_lib.cli(main))
