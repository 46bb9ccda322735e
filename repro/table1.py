"""Table 1: every method of the paper against the cross-family teacher, with 95% intervals and paired differences
from GRPO.

    nox -s reproduce_table1 [-- --profile lab|smoke|paper --preset P --seeds N]
    python -m repro.table1 --profile lab

``lab`` (default): tiny models on a CPU, trained with ``TGPOTrainer`` through the run-config path of ``tgpo train`` and
scored with ``tgpo eval`` on the lab's lm-eval tasks. ``smoke``: the same in seconds per row (CI). ``paper``: the
paper's Qwen runs from ``repro/configs/paper/`` through ``tgpo train`` and ``tgpo eval``; it needs GPUs and the Hugging
Face Hub and says so otherwise (``--dry-run`` prints its plan anywhere).

Outputs in ``results/<profile>/``: ``table1.csv``, ``table1.md``, ``table1_runs.json`` (every run's scores, per-problem
values and curves), ``table1_curves.png`` (lab) and ``table1_manifest.json``; with ``--preset`` other than the
profile's default or ``--seeds`` other than the config's, ``table1_<preset>_<N>seeds.*``. Earlier outputs are moved
to ``previous/``.
"""

from __future__ import annotations

import sys

from repro import _lib, plots

NAME = "table1"
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
