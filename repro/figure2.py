"""Figure 2: RKL dynamics with the in-family versus the cross-family teacher — training score, gradient norm
and response length against step (the runs of Table 3).

    nox -s reproduce_figure2 [-- --profile lab|smoke --seeds N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Manifest, base_parser, load_profile_config, prepare_output_dir  # noqa: E402
from table1 import lab_job, print_plan, save_runs  # noqa: E402

OUTPUTS = ["figure2.png", "figure2_runs.json", "figure2_manifest.json"]
METRICS = ["reward", "grad_norm", "completions/mean_length"]


def main(argv: list[str] | None = None) -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.profile == "paper":
        raise SystemExit("figure2: the paper profile's curves come from the paper runs' logs "
                         "(tgpo train logs every step to TensorBoard/W&B); run the lab or smoke profile here")
    from lab_runner import run_jobs
    from plots import curves_frame, plot_curves

    cfg = load_profile_config(args.profile, "table3")  # the same runs as Table 3
    seeds = list(range(args.seeds or cfg["seeds"]))
    jobs = [lab_job(cfg, "rkl", seed, args.profile, teacher=teacher, row=f"RKL | {family} teacher")
            for family, teacher in cfg["teachers"].items() for seed in seeds]
    if args.dry_run:
        return print_plan(jobs)
    out_dir = prepare_output_dir(args.output_dir or RESULTS / args.profile, OUTPUTS)
    manifest = Manifest(script="repro/figure2.py", profile=args.profile, seeds=seeds, config=cfg)
    records = run_jobs(jobs, args.workers, desc=f"Figure 2 ({args.profile})")
    plot_curves(curves_frame(records), METRICS, "Figure 2 — RKL: in-family vs cross-family teacher",
                out_dir / "figure2.png")
    save_runs(records, out_dir, "figure2", manifest)
    print(f"[figure2] wrote {out_dir / 'figure2.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
