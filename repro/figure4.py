"""Figure 4 (and its smaller-student twin, Figure 6): training reward, response length and gradient norm of
TGPO, RKL, KDRL, LUFFY and GRPO against step, with the cross-family teacher (the runs of Tables 1 and 2).

    nox -s reproduce_figure4 [-- --profile lab|smoke --seeds N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Manifest, base_parser, load_profile_config, prepare_output_dir  # noqa: E402
from table1 import lab_job, print_plan, save_runs  # noqa: E402
from tables import METHOD_LABELS  # noqa: E402

METHODS = ["tgpo", "rkl", "kdrl", "luffy", "grpo"]
METRICS = ["reward", "completions/mean_length", "grad_norm"]
FIGURES = {"figure4": "table1", "figure6": "table2"}  # figure -> the table whose runs it plots
OUTPUTS = [f"{f}{s}" for f in FIGURES for s in (".png", "_runs.json", "_manifest.json")]


def main(argv: list[str] | None = None) -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.profile == "paper":
        raise SystemExit("figure4: the paper profile's curves come from the paper runs' logs; "
                         "run the lab or smoke profile here")
    from lab_runner import run_jobs
    from plots import curves_frame, plot_curves

    plans = {}
    for figure, table in FIGURES.items():
        cfg = load_profile_config(args.profile, table)
        seeds = list(range(args.seeds or cfg["seeds"]))
        plans[figure] = (cfg, seeds, [lab_job(cfg, m, s, args.profile) for m in METHODS for s in seeds])
    if args.dry_run:
        return print_plan([job for _, _, jobs in plans.values() for job in jobs])
    out_dir = prepare_output_dir(args.output_dir or RESULTS / args.profile, OUTPUTS)
    for figure, (cfg, seeds, jobs) in plans.items():
        manifest = Manifest(script="repro/figure4.py", profile=args.profile, seeds=seeds, config=cfg)
        records = run_jobs(jobs, args.workers, desc=f"{figure} ({args.profile})")
        plot_curves(curves_frame(records), METRICS,
                    f"Figure {figure.removeprefix('figure')} — student "
                    f"{cfg['student']}, cross-family teacher", out_dir / f"{figure}.png",
                    labels=[METHOD_LABELS[m] for m in METHODS])
        save_runs(records, out_dir, figure, manifest)
        print(f"[figure4] wrote {out_dir / (figure + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
