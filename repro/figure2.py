"""Figure 2: RKL dynamics with the in-family versus the cross-family teacher — training reward, gradient norm and
response length against step (Table 3's RKL runs).

    nox -s reproduce_figure2 [-- --profile lab|smoke --preset P --seeds N]

Outputs in ``results/<profile>/``: ``figure2.png``, ``figure2_runs.json``, ``figure2_manifest.json``.
"""

from __future__ import annotations

import sys

from repro import _lib, plots

NAME = "figure2"
SUFFIXES = (".png", "_runs.json", "_manifest.json")
PANELS = ["reward", "grad_norm", "completions/mean_length"]


def main(argv: list[str] | None = None) -> int:
    args = _lib.parse_args(NAME, __doc__, argv, profiles=_lib.LAB_PROFILES)
    table = _lib.load_table(args.profile, "table3")  # the same runs as Table 3
    stem = _lib.output_stem(NAME, args, table)
    plan = _lib.plan_runs(table, args, rows=table.select(["rkl"]))
    if args.dry_run:
        return _lib.print_plan(plan)
    _lib.check_ready(plan)
    out_dir = _lib.archive(_lib.output_dir(args), [stem + s for s in SUFFIXES])
    manifest = _lib.Manifest(NAME, args, table, plan.seeds)

    records = _lib.run_plan(plan, args, desc=f"Figure 2 ({args.profile}, {args.preset})")

    plots.plot_curves(plots.curves_frame(records), PANELS, "Figure 2 — RKL: in-family vs cross-family teacher",
                      out_dir / f"{stem}.png")
    _lib.save_runs(records, out_dir, stem)
    manifest.write(out_dir, stem, records)
    print(f"[{NAME}] wrote {out_dir / (stem + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(_lib.cli(main))
