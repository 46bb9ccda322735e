"""Divergence sweep (beyond the paper): final accuracy of GRPO, RKL, KDRL and TGPO against the lab's
divergence knob — the share of the teacher's training steps written in the other style, from the in-family
teacher (0) to the most divergent one — with seed spread, and the measured teacher–student argmax agreement
on the student's own rollouts at each point.

    nox -s reproduce_sweep [-- --profile lab|smoke --seeds N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Manifest, base_parser, load_profile_config, prepare_output_dir  # noqa: E402
from plots import save_figure  # noqa: E402  (selects matplotlib's Agg backend)
from table1 import lab_job, print_plan, save_runs  # noqa: E402
from tables import METHOD_LABELS, scores_frame  # noqa: E402

OUTPUTS = ["sweep.png", "sweep.csv", "sweep_runs.json", "sweep_manifest.json"]


def sweep_frame(records: list[dict], cfg: dict):
    """Per (method, knob): mean and std over seeds of each average, and the step-1 argmax agreement."""
    import pandas as pd

    long = scores_frame(records)
    long["knob"] = [r["extra"]["knob"] for r in records for _ in r["scores"]]
    long["method"] = [r["method"] for r in records for _ in r["scores"]]
    wide = long[long.task.isin(cfg["columns"])].pivot_table(index=["method", "knob", "seed"], columns="task",
                                                            values="score").rename(columns=cfg["columns"])
    wide = wide[list(cfg["columns"].values())]
    for avg, members in cfg["averages"].items():
        wide[avg] = wide[members].mean(axis=1)
    stats = wide.groupby(level=["method", "knob"]).agg(["mean", "std"])
    stats.columns = [f"{c} {s}" for c, s in stats.columns]
    agreement = pd.DataFrame([
        {"method": r["method"], "knob": r["extra"]["knob"], "argmax_agreement_step1": r["curves"][0]["teacher/argmax_agreement"]}
        for r in records if r.get("curves") and "teacher/argmax_agreement" in r["curves"][0]
    ])
    if not agreement.empty:
        per_knob = agreement.groupby("knob").argmax_agreement_step1.mean()
        stats["argmax agreement (step 1)"] = [per_knob.get(k) for _, k in stats.index]
    return stats.reset_index()


def plot(stats, cfg: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    averages = list(cfg["averages"])
    fig, axes = plt.subplots(1, len(averages) + 1, figsize=(4.8 * (len(averages) + 1), 3.9))
    for ax, avg in zip(axes, averages):
        for method in cfg["methods"]:
            sub = stats[stats.method == method].sort_values("knob")
            mean, std = sub[f"{avg} mean"], sub[f"{avg} std"].fillna(0.0)
            (line,) = ax.plot(sub.knob, mean, marker="o", label=METHOD_LABELS[method])
            ax.fill_between(sub.knob, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        ax.set_xlabel("divergence knob: share of teacher steps in the other style")
        ax.set_ylabel(f"{avg}, greedy pass@1 (%)")
        ax.set_title(avg, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, frameon=False)
    if "argmax agreement (step 1)" in stats:
        agree = stats.dropna(subset=["argmax agreement (step 1)"]).groupby("knob")["argmax agreement (step 1)"].mean()
        axes[-1].plot(agree.index, agree.values, marker="s", color="black")
    axes[-1].set_xlabel("divergence knob")
    axes[-1].set_ylabel("teacher argmax = student's token")
    axes[-1].set_title("measured agreement on the student's rollouts (step 1)", fontsize=10)
    axes[-1].grid(alpha=0.3)
    fig.suptitle(f"Divergence sweep — student {cfg['student']}, band = ±1 std over seeds", fontsize=11)
    save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.profile == "paper":
        raise SystemExit("sweep: the divergence knob exists only in the lab; run the lab or smoke profile")
    from lab_runner import run_jobs

    cfg = load_profile_config(args.profile, "sweep")
    seeds = list(range(args.seeds or cfg["seeds"]))
    jobs = [lab_job(cfg, method, seed, args.profile, teacher=teacher, knob=float(knob))
            for knob, teacher in cfg["knob"].items() for method in cfg["methods"] for seed in seeds]
    if args.dry_run:
        return print_plan(jobs)
    out_dir = prepare_output_dir(args.output_dir or RESULTS / args.profile, OUTPUTS)
    manifest = Manifest(script="repro/sweep.py", profile=args.profile, seeds=seeds, config=cfg)
    records = run_jobs(jobs, args.workers, desc=f"Divergence sweep ({args.profile})")
    stats = sweep_frame(records, cfg)
    stats.round(3).to_csv(out_dir / "sweep.csv", index=False)
    plot(stats, cfg, out_dir / "sweep.png")
    save_runs(records, out_dir, "sweep", manifest)
    print(stats.round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
