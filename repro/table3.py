"""Table 3: robustness to the teacher — RKL, KDRL and TGPO with the in-family and with the cross-family
teacher, side by side, and the change between them (cross − in).

    nox -s reproduce_table3 [-- --profile lab|smoke|paper --seeds N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Manifest, base_parser, load_profile_config, prepare_output_dir  # noqa: E402
from table1 import lab_job, print_plan, save_runs  # noqa: E402
from tables import METHOD_LABELS, scores_frame, seed_table  # noqa: E402

OUTPUTS = ["table3.csv", "table3.md", "table3_runs.json", "table3_manifest.json"]


def table3_jobs(cfg: dict, seeds: list[int], profile: str) -> list:
    return [lab_job(cfg, method, seed, profile, teacher=teacher, row=f"{METHOD_LABELS[method]} | {family}")
            for method in cfg["methods"] for family, teacher in cfg["teachers"].items() for seed in seeds]


def side_by_side(records: list[dict], cfg: dict) -> tuple:
    """(frame, markdown): per method, each column's mean ± std with each teacher, and the change."""
    import pandas as pd

    table = seed_table(scores_frame(records), cfg["columns"], cfg["averages"],
                       [f"{METHOD_LABELS[m]} | {f}" for m in cfg["methods"] for f in cfg["teachers"]])
    labels = [c.removesuffix(" mean") for c in table.columns if c.endswith(" mean")]
    families = list(cfg["teachers"])
    rows, lines = [], []
    header = ["method"] + [f"{lab} ({fam})" for lab in labels for fam in families] + [f"Δ {lab}" for lab in labels]
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for method in cfg["methods"]:
        label = METHOD_LABELS[method]
        row, cells = {"method": label}, [label]
        for lab in labels:
            for fam in families:
                r = table.loc[f"{label} | {fam}"]
                row[f"{lab} ({fam}) mean"], row[f"{lab} ({fam}) std"] = r[f"{lab} mean"], r[f"{lab} std"]
                cells.append(f"{r[f'{lab} mean']:.1f} ± {r[f'{lab} std']:.1f}")
        for lab in labels:
            delta = table.loc[f"{label} | {families[-1]}", f"{lab} mean"] - table.loc[f"{label} | {families[0]}", f"{lab} mean"]
            row[f"Δ {lab}"] = delta
            cells.append(f"{delta:+.1f}")
        rows.append(row)
        lines.append("| " + " | ".join(cells) + " |")
    return pd.DataFrame(rows), "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.profile == "paper":
        from paper import run_paper_table

        return run_paper_table(args, "table3", OUTPUTS)
    from lab_runner import run_jobs

    cfg = load_profile_config(args.profile, "table3")
    seeds = list(range(args.seeds or cfg["seeds"]))
    jobs = table3_jobs(cfg, seeds, args.profile)
    if args.dry_run:
        return print_plan(jobs)
    out_dir = prepare_output_dir(args.output_dir or RESULTS / args.profile, OUTPUTS)
    manifest = Manifest(script="repro/table3.py", profile=args.profile, seeds=seeds, config=cfg)
    records = run_jobs(jobs, args.workers, desc=f"Table 3 ({args.profile})")
    frame, md = side_by_side(records, cfg)
    frame.round(2).to_csv(out_dir / "table3.csv", index=False)
    families = list(cfg["teachers"])
    text = (f"# Table 3 — robustness to the teacher ({args.profile} profile, student {cfg['student']})\n\n{md}\n\n"
            f"Teachers: " + ", ".join(f"{f} = `{t}`" for f, t in cfg["teachers"].items()) +
            f". Δ = {families[-1]} − {families[0]} (percentage points). Greedy pass@1 in percent, mean ± std over "
            f"{len(seeds)} seed(s). Measured by this repo.\n")
    (out_dir / "table3.md").write_text(text)
    save_runs(records, out_dir, "table3", manifest)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
