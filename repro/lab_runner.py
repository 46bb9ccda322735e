"""Run lab jobs: train one method with one seed through ``tgpo train``'s own path, then score it with
``tgpo eval`` on the lab's lm-eval tasks. Every table and figure of the lab profile is made of these jobs.

A job runs in its own process (one thread each: tiny models are ~20x slower with two threads here), so
``--workers 2`` keeps both cores busy; the parent shows one progress bar over all jobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

#: Columns of the training curves kept from TRL's log history (``step`` is added).
CURVE_KEYS = (
    "reward", "completions/mean_length", "grad_norm", "entropy", "clip_fraction", "guidance_weight",
    "guidance_loss", "teacher/argmax_agreement", "teacher/sampled_logp", "loss",
)


@dataclass
class LabJob:
    """One training run (or, with ``method='base'``, the untrained student) and its evaluation."""

    name: str  # unique within a script, e.g. "tgpo-s0"
    method: str  # "base" or a TGPOConfig.method
    seed: int
    student: str  # lab model name (tgpo.lab.MODELS) or a folder
    teacher: str | None
    trainer: dict  # TGPOConfig fields shared by every run of the script
    train_size: int
    data_seed: int
    eval_tasks: str
    eval_limit: int | None
    work_dir: str  # models and logs (not committed)
    eval_batch_size: int = 64
    extra: dict = field(default_factory=dict)  # labels a script wants back in the record (e.g. the knob)


def _model_dir(name_or_path: str) -> str:
    from tgpo.lab import model_path

    return str(name_or_path) if Path(name_or_path).exists() else str(model_path(name_or_path))


def _write_train_jsonl(path: Path, size: int, seed: int) -> Path:
    from tgpo.lab import rl_dataset

    rows = rl_dataset(n=size, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps({k: row[k] for k in ("prompt", "answer", "teacher_completion")}) + "\n")
    return path


def _curves(log_history: list[dict]) -> list[dict]:
    rows = []
    for entry in log_history:
        if "step" in entry and any(k in entry for k in CURVE_KEYS):
            rows.append({"step": entry["step"], **{k: entry[k] for k in CURVE_KEYS if k in entry}})
    return rows


def _evaluate(model_dir: str, job: LabJob, out_dir: Path) -> dict[str, float]:
    """``tgpo eval`` on the lab tasks; returns ``{task: pass@1}`` from its ``summary.csv``."""
    import csv

    from tgpo.cli import main as tgpo_main

    argv = ["eval", "--model", model_dir, "--backend", "hf", "--tasks", job.eval_tasks, "--no-chat-template",
            "--device", "cpu", "--batch-size", str(job.eval_batch_size), "--output-dir", str(out_dir),
            "--seed", str(job.seed)]
    if job.eval_limit:
        argv += ["--limit", str(job.eval_limit)]
    if tgpo_main(argv) != 0:
        raise RuntimeError(f"tgpo eval failed for {model_dir}")
    with (out_dir / "summary.csv").open() as fh:
        return {row["task"]: float(row["pass@1"]) for row in csv.DictReader(fh)}


def run_lab_job(job: LabJob) -> dict:
    """Train (unless ``base``) and evaluate; returns a JSON-able record with scores and curves."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from tgpo.train_cli import build_trainer

    work = Path(job.work_dir) / job.name
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    record = {**asdict(job), "curves": [], "train_seconds": 0.0}
    model_dir = _model_dir(job.student)
    if job.method != "base":
        data = _write_train_jsonl(Path(job.work_dir) / f"train-{job.train_size}-{job.data_seed}.jsonl",
                                  job.train_size, job.data_seed)
        cfg = {
            "model": model_dir,
            "teacher_model": _model_dir(job.teacher) if job.teacher else None,
            "dataset": {"path": str(data)},
            "system_prompt": "",
            "trainer": {**job.trainer, "method": job.method, "seed": job.seed, "output_dir": str(work / "model"),
                        "save_strategy": "no", "disable_tqdm": True},
        }
        trainer = build_trainer(cfg)
        trainer.train()
        trainer.save_model(str(work / "model"))
        record["curves"] = _curves(trainer.state.log_history)
        record["train_seconds"] = round(time.time() - started, 1)
        model_dir = str(work / "model")
        del trainer
    eval_started = time.time()
    record["scores"] = _evaluate(model_dir, job, work / "eval")
    record["eval_seconds"] = round(time.time() - eval_started, 1)
    return record


def job_key(job: LabJob) -> str:
    """What determines a job's result: its settings and the exact models (their build hashes), not its name."""
    from tgpo.lab import read_build_info

    def model_hash(name):
        if not name:
            return None
        try:
            return (read_build_info(_model_dir(name)) or {}).get("config_hash", str(name))
        except (OSError, ValueError, KeyError):
            return str(name)

    settings = {k: v for k, v in asdict(job).items() if k not in ("name", "work_dir", "extra")}
    settings["student_hash"], settings["teacher_hash"] = model_hash(job.student), model_hash(job.teacher)
    if job.method in ("base", "grpo", "luffy"):  # these never run the teacher model
        settings["teacher"] = settings["teacher_hash"] = None
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run_logged(job: LabJob) -> dict:
    """Child-process entry: output goes to ``<work>/<name>.log`` so the parent's progress bar stays readable."""
    import contextlib

    log = Path(job.work_dir) / f"{job.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            return run_lab_job(job)
        except Exception:
            traceback.print_exc()
            raise RuntimeError(f"lab job {job.name} failed; see {log}") from None


def run_jobs(jobs: list[LabJob], workers: int | None = None, desc: str = "lab runs") -> list[dict]:
    """Run ``jobs`` in ``workers`` processes (default: CPU cores) with one progress bar; records in job order.

    A job whose :func:`job_key` already has a record in ``<work_dir>/cache/`` is not run again (scripts share
    runs: Figure 4 plots Table 1's, Table 3 reuses its cross-family rows); delete that folder to rerun.
    """
    results: dict[str, dict] = {}
    keys = {job.name: job_key(job) for job in jobs}
    for job in jobs:
        cached = Path(job.work_dir) / "cache" / f"{keys[job.name]}.json"
        if cached.exists():
            results[job.name] = {**json.loads(cached.read_text()), "name": job.name, "extra": job.extra}
    todo = list({keys[job.name]: job for job in jobs if job.name not in results}.values())  # identical jobs once
    if len(todo) < len(jobs):
        print(f"[{desc}] {len(jobs) - len(todo)} of {len(jobs)} runs reused from identical runs")
    if todo:
        _run_pool(todo, workers, desc, results, keys)
    by_key = {keys[name]: rec for name, rec in results.items()}
    return [results.get(job.name) or {**by_key[keys[job.name]], "name": job.name, "extra": job.extra} for job in jobs]


def _run_pool(jobs: list[LabJob], workers: int | None, desc: str, results: dict, keys: dict) -> None:
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    env_before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers before torch loads there
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool, \
                tqdm(total=len(jobs), desc=desc, unit="run") as bar:
            futures = {pool.submit(_run_logged, job): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                results[job.name] = future.result()
                cache = Path(job.work_dir) / "cache" / f"{keys[job.name]}.json"
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps(results[job.name]))
                scores = results[job.name]["scores"]
                bar.set_postfix_str(f"{job.name}: " + " ".join(f"{k.removeprefix('tgpo_lab_')}={v:.2f}"
                                                             for k, v in scores.items() if k != "tgpo_lab"))
                bar.update()
    finally:
        if env_before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_before
