"""Figure 5: the guidance-weight schedule ablation — constant weight, linear decay reaching 0 at two thirds
of training (the paper's), linear decay reaching 0 at the end, and no guidance (TGPO, cross-family teacher).

    nox -s reproduce_figure5 [-- --profile lab|smoke --seeds N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Manifest, base_parser, load_profile_config, prepare_output_dir  # noqa: E402
from plots import curves_frame, save_figure  # noqa: E402  (selects matplotlib's Agg backend)
from table1 import lab_job, print_plan, save_runs  # noqa: E402
from tables import scores_frame, seed_table  # noqa: E402

OUTPUTS = ["figure5.png", "figure5.csv", "figure5_runs.json", "figure5_manifest.json"]


def plot(records: list[dict], cfg: dict, table, out: Path) -> None:
    import matplotlib.pyplot as plt

    from tgpo.objectives import guidance_weight

    labels = list(cfg["schedules"])
    fig, (bars, curves_ax) = plt.subplots(1, 2, figsize=(12, 4.2))
    averages = list(cfg["averages"])
    width = 0.8 / len(averages)
    for i, avg in enumerate(averages):
        xs = [j + (i - (len(averages) - 1) / 2) * width for j in range(len(labels))]
        bars.bar(xs, table[f"{avg} mean"], width, yerr=table[f"{avg} std"], capsize=3, label=avg)
    bars.set_xticks(range(len(labels)), labels, rotation=12, fontsize=8)
    bars.set_ylabel("greedy pass@1 (%)")
    bars.set_title("final accuracy by schedule (error bar: ±1 std over seeds)", fontsize=10)
    bars.legend(fontsize=8, frameon=False)
    frame = curves_frame(records)
    for label in labels:
        sub = frame[frame.label == label].pivot_table(index="step", columns="seed", values="reward")
        mean = sub.rolling(5, min_periods=1).mean().mean(axis=1)
        curves_ax.plot(mean.index, mean.values, label=label, lw=1.5)
    curves_ax.set_xlabel("optimizer step")
    curves_ax.set_ylabel("training reward (5-step rolling mean over seeds)")
    curves_ax.set_title("training reward", fontsize=10)
    curves_ax.legend(fontsize=8, frameon=False, loc="lower right")
    inset = curves_ax.inset_axes([0.08, 0.62, 0.34, 0.33])
    steps = range(1, cfg["trainer"]["max_steps"] + 1)
    for label in labels:
        t = {**cfg["trainer"], **cfg["schedules"][label]}
        inset.plot(steps, [guidance_weight(k, t["guidance_weight"], t["guidance_decay"], t["guidance_min"])
                           for k in steps], lw=1.2)
    inset.set_title("schedule λ(k)", fontsize=7)
    inset.tick_params(labelsize=6)
    fig.suptitle(f"Figure 5 — guidance-weight schedule ablation (TGPO, student {cfg['student']}, "
                 f"teacher {cfg['teacher']})", fontsize=11)
    save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.profile == "paper":
        raise SystemExit("figure5: the paper profile's ablation runs are repro/configs/paper/ablation_anneal_*.yaml "
                         "(launch with repro/launch/train_paper.sh); run the lab or smoke profile here")
    from lab_runner import run_jobs

    cfg = load_profile_config(args.profile, "figure5")
    seeds = list(range(args.seeds or cfg["seeds"]))
    jobs = [lab_job(cfg, "tgpo", seed, args.profile, trainer=overrides, row=label)
            for label, overrides in cfg["schedules"].items() for seed in seeds]
    if args.dry_run:
        return print_plan(jobs)
    out_dir = prepare_output_dir(args.output_dir or RESULTS / args.profile, OUTPUTS)
    manifest = Manifest(script="repro/figure5.py", profile=args.profile, seeds=seeds, config=cfg)
    records = run_jobs(jobs, args.workers, desc=f"Figure 5 ({args.profile})")
    table = seed_table(scores_frame(records), cfg["columns"], cfg["averages"], list(cfg["schedules"]))
    table.round(2).to_csv(out_dir / "figure5.csv", index_label="schedule")
    plot(records, cfg, table, out_dir / "figure5.png")
    save_runs(records, out_dir, "figure5", manifest)
    print(table.round(1).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
