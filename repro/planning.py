"""Run plans: a table's (row, seed) pairs as lab jobs or paper runs; checking, printing and running them."""

from __future__ import annotations

import argparse
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

from repro import lab_runner, paper
from repro.options import output_dir, seeds_of
from repro.paths import runs_dir
from repro.table_config import DEFAULT_RL_SPLIT, LAB_PROFILES, Row, Table, UsageError


@dataclass
class Plan:
    """What a script will run: lab jobs or paper runs, for one table (or a selection of its rows)."""

    table: Table
    seeds: list[int]
    preset: str
    jobs: list  # repro.lab_runner.LabJob (lab, smoke) or repro.paper.PaperRun (paper)

    @property
    def lab(self) -> bool:
        return self.table.profile in LAB_PROFILES


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def lab_job(table: Table, row: Row, seed: int, preset: str):
    """The lab job of one row and seed (the row's student/teacher/trainer over the table's)."""

    student = row.student or table.student
    teacher = row.teacher or table.teacher
    split = row.rl_split or table.rl_split
    shown_split = split if row.trained and split != DEFAULT_RL_SPLIT else None
    name = "-".join(p for p in (_slug(row.key), student, teacher if row.trained else None, shown_split and _slug(split),
                                f"s{seed}") if p)
    return lab_runner.LabJob(
        name=name, row=row.key, label=row.label, variant=row.variant, method=row.method, seed=seed,
        student=student, teacher=teacher, preset=preset, trainer={**table.trainer, **row.trainer},
        train_size=row.train_size or table.get("train_size", 0), data_seed=table.get("data_seed", 0), rl_split=split,
        eval_tasks=table.eval["tasks"], eval_limit=table.eval.get("limit"),
        eval_batch_size=table.eval.get("batch_size", 64), work_dir="",
    )


def plan_runs(table: Table, args: argparse.Namespace, rows: Sequence[Row] | None = None,
              stem: str | None = None) -> Plan:
    """Every (row, seed) of ``rows`` (default: the table's) as lab jobs or paper runs. The untrained student is
    evaluated once: greedy decoding does not depend on the seed."""
    rows = list(table.rows if rows is None else rows)
    seeds = seeds_of(args, table)
    pairs = [(row, seed) for row in rows for seed in (seeds if row.trained else seeds[:1])]
    if table.profile == "paper":
        eval_root = output_dir(args) / f"{stem or table.name}_eval"
        return Plan(table, seeds, args.preset, [paper.plan_run(table, row, seed, args.preset, eval_root)
                                                for row, seed in pairs])
    return Plan(table, seeds, args.preset, [lab_job(table, row, seed, args.preset) for row, seed in pairs])


def check_ready(plan: Plan) -> None:
    """Stop (one line) before anything is archived when a plan cannot run here: lab models not built, bad trainer
    settings; the paper profile without GPUs."""
    if plan.lab:
        from tgpo.run_config import ConfigError, make_args

        for job in plan.jobs:
            for name in {job.student, *([job.teacher] if job.reads_teacher and job.teacher else [])}:
                folder = lab_runner.model_dir(name)
                if not (folder / "config.json").exists():
                    raise UsageError(f"lab model {name!r} is not built ({folder}); build it with: tgpo lab build --only {name}")
        checked = set()
        for job in plan.jobs:  # every distinct trainer config must make a TGPOConfig (ranges, names) before any run
            if not job.trained:
                continue
            trainer = lab_runner.job_settings(job)["trainer"]
            marker = json.dumps(trainer, sort_keys=True, default=str)
            if marker in checked:
                continue
            checked.add(marker)
            try:
                with warnings.catch_warnings():  # library deprecation notes are not this check's business
                    warnings.simplefilter("ignore")
                    make_args({**trainer, "output_dir": str(runs_dir() / "check")}, probe=True, where=f"row {job.label!r}")
            except ConfigError as err:
                raise UsageError(str(err).splitlines()[0]) from None
        lab_runner.check_cache(plan.jobs, runs_dir() / plan.table.profile / "cache")  # corrupt records: aside now
        return
    missing = paper.requirements_missing()
    if missing:
        name = plan.table.name
        raise UsageError(f"the paper profile needs {'; '.join(missing)}; see its plan with "
                         f"`python -m repro.{name} --profile paper --dry-run` and repro/launch/README.md")


def print_plan(plan: Plan) -> int:
    if not plan.lab:
        return paper.print_plan(plan.jobs)
    for job in plan.jobs:
        trainer = lab_runner.job_settings(job).get("trainer", {})
        print(f"{job.name}: row={job.label!r} method={job.method} student={job.student} "
              f"teacher={job.teacher if job.reads_teacher else '-'} "
              f"preset={job.preset if job.trained else '-'} steps={trainer.get('max_steps', '-')} "
              f"eval={job.eval_tasks} limit={job.eval_limit}")
    return 0


def run_plan(plan: Plan, args: argparse.Namespace, desc: str) -> list[dict]:
    """Run (or reuse) every job of the plan; records in plan order (:mod:`repro.records`)."""
    if not plan.lab:
        return paper.run(plan.jobs)
    root = runs_dir() / plan.table.profile
    jobs = [replace(job, work_dir=str(root / "jobs" / job.name)) for job in plan.jobs]
    return lab_runner.run_jobs(jobs, root / "cache", workers=args.workers, desc=desc, use_cache=not args.no_cache,
                               fresh_after=args.cache_after)
