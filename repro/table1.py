"""Table 1: every method of the paper against the cross-family teacher, mean ± std over seeds.

    nox -s reproduce_table1 [-- --profile lab|smoke|paper --seeds N]
    python repro/table1.py --profile lab

``lab`` (default): tiny models on a CPU, trained with ``TGPOTrainer`` through ``tgpo train``'s own path and
scored with ``tgpo eval`` on the lab's lm-eval tasks. ``smoke``: the same in about a minute per row (CI).
``paper``: the paper's Qwen runs from ``repro/configs/paper/`` through ``tgpo train`` and ``tgpo eval``; it
needs GPUs and the Hugging Face Hub and says so otherwise (``--dry-run`` prints its plan anywhere).

Outputs in ``results/<profile>/``: ``table1.csv``, ``table1.md``, ``table1_runs.json`` (every run's scores and
curves), ``table1_curves.png`` and ``table1_manifest.json``. Earlier outputs are moved to ``previous/``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, RUNS, Manifest, base_parser, load_profile_config, prepare_output_dir  # noqa: E402
from tables import METHOD_LABELS, reported_section, row_label, scores_frame, seed_table, to_markdown  # noqa: E402

OUTPUTS = ["table1.csv", "table1.md", "table1_runs.json", "table1_curves.png", "table1_manifest.json"]  # paper profile
CURVE_METRICS = ["reward", "completions/mean_length", "grad_norm", "entropy"]


def lab_job(cfg: dict, method: str, seed: int, profile: str, teacher: str | None = None, trainer: dict | None = None,
            row: str | None = None, **extra):
    """One lab job from a lab-profile config (``teacher``/``trainer`` override the config's)."""
    from lab_runner import LabJob

    teacher = teacher or cfg["teacher"]
    parts = [f"{k}{v}" for k, v in extra.items()] + ([re.sub(r"[^A-Za-z0-9.]+", "_", row).strip("_")] if trainer else [])
    tag = "-".join(parts)  # names must be unique within a script: runs that differ in settings get a tag
    return LabJob(
        name=f"{method}-{cfg['student']}-{teacher}{'-' + tag if tag else ''}-s{seed}", method=method, seed=seed,
        student=cfg["student"], teacher=teacher, trainer={**cfg["trainer"], **(trainer or {})},
        train_size=cfg["train_size"], data_seed=cfg["data_seed"], eval_tasks=cfg["eval"]["tasks"],
        eval_limit=cfg["eval"]["limit"], eval_batch_size=cfg["eval"]["batch_size"],
        work_dir=str(RUNS / profile / "jobs"), extra={"row": row or METHOD_LABELS[method], **extra},
    )


def lab_jobs(cfg: dict, seeds: list[int], profile: str) -> list:
    """Every row of a Table-1-shaped config; the base student is evaluated (greedily) once."""
    return [lab_job(cfg, method, seed, profile) for method in cfg["rows"]
            for seed in (seeds if method != "base" else seeds[:1])]


def write_table(records: list[dict], cfg: dict, out_dir: Path, title: str, stem: str, reported_benchmarks=None,
                reported_models=None) -> str:
    """CSV + markdown of mean ± std over seeds; returns the markdown."""
    table = seed_table(scores_frame(records), cfg["columns"], cfg["averages"], [row_label(cfg, m) for m in cfg["rows"]])
    table.round(2).to_csv(out_dir / f"{stem}.csv", index_label="method")
    md = [f"# {title}", "", to_markdown(table), ""]
    md.append(f"Scores are greedy pass@1 in percent on {cfg['eval']['limit'] or 'all'} problems per split; "
              "mean ± sample std over seeds. Measured by this repo (see the manifest).")
    if reported_benchmarks:
        md += ["", "## Reported by the paper and related work (not measured here)", "",
               "The paper profile's benchmarks and models, from `tgpo/resources/paper_reference.csv`; the lab's "
               "tiny models and synthetic splits are not comparable to them cell by cell.", "",
               reported_section(reported_benchmarks, reported_models)]
    text = "\n".join(md) + "\n"
    (out_dir / f"{stem}.md").write_text(text)
    return text


def print_plan(jobs) -> int:
    for job in jobs:
        print(f"{job.name}: method={job.method} student={job.student} teacher={job.teacher} "
              f"steps={job.trainer['max_steps']} eval={job.eval_tasks}")
    return 0


def save_runs(records: list[dict], out_dir: Path, stem: str, manifest: Manifest) -> None:
    """Every run's scores and curves as JSON, and the manifest with each run's seconds."""
    (out_dir / f"{stem}_runs.json").write_text(json.dumps(records, indent=1) + "\n")
    manifest.extra["run_seconds"] = {r["name"]: {"train": r["train_seconds"], "eval": r["eval_seconds"]}
                                     for r in records}
    manifest.write(out_dir, f"{stem}_manifest.json")


def render_lab_table(records: list[dict], cfg: dict, out_dir: Path, profile: str, name: str, title: str) -> str:
    """The lab table, with the paper's reported numbers for the same table below it (labelled, not compared)."""
    paper = load_profile_config("paper", name)
    return write_table(records, cfg, out_dir, f"{title} — {profile} profile (student {cfg['student']}, "
                       f"cross-family teacher {cfg['teacher']})", name,
                       reported_benchmarks=[t.removeprefix("tgpo_") for t in paper["columns"]],
                       reported_models=paper.get("reported_models"))


def run_lab_table(args, profile: str, name: str, title: str) -> int:
    """A Table-1-shaped lab table (rows: methods; columns: the lab's splits) with its training curves."""
    from lab_runner import run_jobs
    from plots import curves_frame, plot_curves

    cfg = load_profile_config(profile, name)
    seeds = list(range(args.seeds or cfg["seeds"]))
    out_dir = args.output_dir or RESULTS / profile
    jobs = lab_jobs(cfg, seeds, profile)
    if args.dry_run:
        return print_plan(jobs)
    outputs = [f"{name}{suffix}" for suffix in (".csv", ".md", "_runs.json", "_curves.png", "_manifest.json")]
    prepare_output_dir(out_dir, outputs)
    manifest = Manifest(script=f"repro/{name}.py", profile=profile, seeds=seeds, config=cfg)
    records = run_jobs(jobs, args.workers, desc=f"{title} ({profile})")
    text = render_lab_table(records, cfg, out_dir, profile, name, title)
    curves = curves_frame([r for r in records if r["method"] != "base"])
    plot_curves(curves, CURVE_METRICS, f"{title}: training curves ({profile})", out_dir / f"{name}_curves.png")
    save_runs(records, out_dir, name, manifest)
    print(text)
    print(f"[{name}] wrote {', '.join(outputs)} to {out_dir}")
    return 0


def run_paper(args) -> int:
    from paper import run_paper_table

    return run_paper_table(args, "table1", OUTPUTS)


def main(argv: list[str] | None = None) -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.profile == "paper":
        return run_paper(args)
    return run_lab_table(args, args.profile, "table1", "Table 1")


if __name__ == "__main__":
    sys.exit(main())
