"""Run lab jobs: train one row of a table with one seed through the run-config path every caller uses
(:func:`tgpo.run_config.resolve` -> :func:`tgpo.train_cli.build_trainer`), then score it with ``tgpo eval`` on the
lab's lm-eval tasks. Every table and figure of the lab profile is made of these jobs.

A job runs in its own process (one thread each: tiny models are ~20x slower with two threads here), so
``--workers 2`` keeps both cores busy; the parent shows one progress bar over all jobs. Finished runs are kept in a
content-addressed cache (:mod:`repro.run_cache`) and reused only when code, models, config and seed are the same.

Job processes end when the process that started them dies (:func:`_end_with_parent`), so a killed script leaves no
job running in folders a rerun reuses; one run at a time uses a cache (:mod:`repro.run_lock`). Each job's output —
prints, library warnings and logging — goes to its own log, at the file-descriptor level (:func:`_output_to`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from repro import run_lock
from repro.records import read_completions, read_eval_dir
from repro.run_cache import RunCache, RunKey, reuse_report
from repro.table_config import DEFAULT_RL_SPLIT
from tgpo.lab.kernels import KERNEL_ENV

#: Columns of the training curves kept from TRL's log history (``step`` is added); class-wise agreement
#: (``teacher/argmax_agreement/<class>``) is kept too. ``policy_loss`` and ``clip_ratio/*`` are TRL's names; records
#: made before the trainer logged them hold ``pg_loss`` (the policy-gradient term alone) and ``clip_fraction`` (=
#: ``clip_ratio/region_mean``), which readers keep accepting.
CURVE_KEYS = (
    "reward", "completions/mean_length", "grad_norm", "entropy", "policy_loss", "clip_ratio/region_mean",
    "clip_ratio/low_mean", "clip_ratio/high_mean", "entropy_coef", "guidance_weight",
    "guidance_loss", "guidance/grad_share", "tipo_bonus", "teacher/argmax_agreement",
    "teacher/sampled_logp", "loss",
    "pg_loss", "clip_fraction",  # the names in records made before TRL's names were logged
)
BASE = "base"
#: Environment of the job processes, set before they start (each is read once, at process start): the lab's pinned
#: kernels and one thread (``tgpo.lab.kernels.KERNEL_ENV``, which says why); glibc's malloc settings keep freed
#: blocks of up to 32 MB (the largest mmap threshold glibc accepts) in the heap rather than handing them back to the
#: kernel, so each step's activations reuse pages instead of faulting in fresh zeroed ones (measured here: system
#: time of a training process 1.7 s -> 0.6 s, steps 6-8% faster with two jobs side by side; allocation does not touch
#: arithmetic, results are bit-identical). Other allocators ignore these variables.
JOB_ENV = {
    **KERNEL_ENV,
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(2**30),
    "MALLOC_TOP_PAD_": str(256 * 2**20),
}


class LabJobError(RuntimeError):
    """One or more lab jobs failed (the message names them and their logs); finished jobs stay cached."""


@dataclass
class LabJob:
    """One training run (or, with ``method='base'``, the untrained student) and its evaluation."""

    name: str  # readable, e.g. "tgpo-student-teacher_cross-s0"
    row: str  # the table row's key
    label: str  # the table row's label
    variant: str | None
    method: str  # "base" or a name in tgpo.objectives.METHODS
    seed: int
    student: str  # lab model name (tgpo.lab) or a model folder
    teacher: str | None
    preset: str  # settings preset (tgpo.run_config.presets)
    trainer: dict  # TGPOConfig fields of this row (table's trainer + the row's overrides), before the preset
    train_size: int
    data_seed: int
    rl_split: str  # the RL prompts' split (tgpo.lab.world.rl_split), e.g. "k4" (Table 1's first) or "k5"
    eval_tasks: str
    eval_limit: int | None
    eval_batch_size: int
    work_dir: str  # this job's models and logs (not committed; cleared when the job runs)

    @property
    def trained(self) -> bool:
        return self.method != BASE

    @property
    def reads_teacher(self) -> bool:
        from tgpo.objectives import METHODS

        return self.trained and bool(METHODS[self.method].teacher)


def model_dir(name_or_path: str) -> Path:
    """A lab model's folder: an existing path as given, else the built model of that name (tgpo.lab)."""
    from tgpo.lab import model_path

    return Path(name_or_path) if Path(name_or_path).exists() else Path(model_path(name_or_path))


def run_config(job: LabJob, data_path: str = "train.jsonl", output_dir: str = "model"):
    """The job's :class:`tgpo.run_config.RunConfig`: its config dict resolved with its preset (what trains)."""
    from tgpo.run_config import resolve

    cfg = {
        "model": str(model_dir(job.student)),
        "teacher_model": str(model_dir(job.teacher)) if job.teacher and job.reads_teacher else None,
        "dataset": {"path": str(data_path)},
        "system_prompt": "",
        "trainer": {**job.trainer, "method": job.method, "seed": job.seed, "output_dir": str(output_dir),
                    "save_strategy": "no", "disable_tqdm": True, "report_to": "none"},
    }
    return resolve(cfg, preset=job.preset, check_paths=False, source=f"lab job {job.name}")


def job_settings(job: LabJob) -> dict:
    """What determines a job's result besides code and model bytes (the ``settings`` part of its cache key)."""
    settings = {"method": job.method, "seed": job.seed, "student": job.student,
                "teacher": job.teacher if job.reads_teacher else None,
                "eval": {"tasks": job.eval_tasks, "limit": job.eval_limit, "batch_size": job.eval_batch_size}}
    if job.trained:
        trainer = dict(run_config(job).trainer)
        trainer.pop("output_dir")
        settings.update(preset=job.preset, trainer=trainer, train_size=job.train_size, data_seed=job.data_seed)
        if job.rl_split != DEFAULT_RL_SPLIT:  # named only off the default, so runs made before the field keep their keys
            settings["rl_split"] = job.rl_split
    return settings


def job_models(job: LabJob) -> list[Path]:
    """The model folders a job reads (the ``models`` part of its cache key)."""
    return [model_dir(job.student)] + ([model_dir(job.teacher)] if job.reads_teacher and job.teacher else [])


def _write_train_jsonl(path: Path, job: LabJob) -> Path:
    from tgpo.lab.config import world_of
    from tgpo.lab.world import rl_split, write_rows

    # the student's world: its teacher traces (LUFFY's) are written as its teachers write them (long, in world v2)
    write_rows(path, rl_split(job.rl_split, n=job.train_size, seed=job.data_seed, world=world_of(Path(job.student).name)))
    return path


def long_form_shares(eval_dir: Path, tasks: list[str]) -> dict[str, float]:
    """Per task, the share of the evaluated completions that write a long step (world v2's long form; 0 in v1)."""
    from tgpo.lab.positions import writes_long_step

    out = {}
    for task in tasks:
        completions = read_completions(eval_dir, task)
        out[task] = sum(map(writes_long_step, completions)) / max(len(completions), 1)
    return out


def _curves(log_history: list[dict]) -> list[dict]:
    rows = []
    for entry in log_history:
        keep = {k: v for k, v in entry.items() if k in CURVE_KEYS or k.startswith("teacher/argmax_agreement/")}
        if "step" in entry and keep:
            rows.append({"step": entry["step"], **keep})
    return rows


def _evaluate(model: str, job: LabJob, out_dir: Path) -> tuple[dict, dict]:
    """:func:`tgpo.eval.evaluate` on the lab tasks; ``(scores, per-problem values)`` from its folder."""
    from tgpo.eval import evaluate

    result = evaluate(model, job.eval_tasks, backend="hf", chat_template=False, device="cpu",
                      batch_size=job.eval_batch_size, output_dir=out_dir, seed=job.seed, limit=job.eval_limit or None)
    if result.status != 0:
        raise RuntimeError(f"tgpo eval failed for {model}")
    return read_eval_dir(out_dir)


def run_lab_job(job: LabJob) -> dict:
    """Train (unless ``base``) and evaluate; returns a JSON-able record with scores, per-problem values and curves."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from tgpo.guards import nonfinite_parameters
    from tgpo.train_cli import build_trainer

    work = Path(job.work_dir)
    shutil.rmtree(work, ignore_errors=True)  # scratch of an earlier attempt at this exact job
    work.mkdir(parents=True)
    started = time.time()
    record = {**asdict(job), "curves": [], "train_seconds": 0.0}
    model = str(model_dir(job.student))
    if job.trained:
        data = _write_train_jsonl(work / "train.jsonl", job)
        run = run_config(job, data_path=str(data), output_dir=str(work / "model"))
        record["trainer_resolved"] = {k: v for k, v in run.trainer.items() if k != "output_dir"}
        trainer = build_trainer(run)
        trainer.train()  # tgpo.guards stop a run whose loss, gradients or weights go non-finite
        problem = nonfinite_parameters(trainer.model)
        if problem is not None:  # never evaluated, never cached
            raise FloatingPointError(f"lab job {job.name}: non-finite parameters after training ({problem})")
        trainer.save_model(str(work / "model"))
        record["curves"] = _curves(trainer.state.log_history)
        record["train_seconds"] = round(time.time() - started, 1)
        model = str(work / "model")
        del trainer
    eval_started = time.time()
    record["scores"], record["problems"] = _evaluate(model, job, work / "eval")
    record["long_form"] = long_form_shares(work / "eval", sorted(record["problems"]))
    record["eval_seconds"] = round(time.time() - eval_started, 1)
    return record


@contextlib.contextmanager
def _output_to(fh):
    """File descriptors 1 and 2 point to ``fh`` for the block (and back afterwards).

    Redirecting at the descriptor level, not by swapping ``sys.stdout``/``sys.stderr``, keeps the streams that
    libraries captured at their first use valid: transformers' logging handler holds the ``sys.stderr`` of the job
    that first logged, which a swapped (and then closed) log file would leave closed for every later job of the
    worker ("Logging error: I/O operation on closed file"). Output of C code and child processes is caught too.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def _run_logged(job: LabJob, run=run_lab_job) -> dict:
    """Child-process entry: ``run(job)`` with its output in ``<work>.log`` beside the job's folder (which the job
    clears when it starts), so the parent's progress bar stays readable."""
    work = Path(job.work_dir)
    log = work.with_name(work.name + ".log")  # not with_suffix: run names hold dots (teacher_t0.5), seeds would share
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh, _output_to(fh):
        try:
            return run(job)
        except Exception:
            traceback.print_exc()
            raise LabJobError(f"lab job {job.name} failed; see {log}") from None


#: ``prctl`` option that delivers a signal to this process when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: Seconds between checks of the parent where ``prctl`` is not available.
PARENT_POLL_S = 1.0


def _end_with_parent(parent: int) -> None:
    """Job-process initializer: die with the parent (the script), whose ``SIGKILL`` would otherwise leave this job
    running. On Linux the kernel sends ``SIGKILL`` (``PR_SET_PDEATHSIG``); elsewhere a thread watches the parent.
    The job's own children (grader workers) read from its pipes and end at their end-of-file."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        def watch():
            while os.getppid() == parent:
                time.sleep(PARENT_POLL_S)
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="end-with-parent").start()


def check_cache(jobs: list[LabJob], cache_dir: Path) -> None:
    """Read the cached records of ``jobs`` once, before a script archives anything: a corrupt one is moved aside
    with one line naming it (:meth:`repro.run_cache.RunCache.load`) and its job counts as not cached."""
    cache = RunCache(cache_dir)
    for job in jobs:
        cache.load(cache.key(job_settings(job), job_models(job)))


def run_jobs(jobs: list[LabJob], cache_dir: Path, workers: int | None = None, desc: str = "lab runs",
             use_cache: bool = True, fresh_after: str | None = None) -> list[dict]:
    """Run ``jobs`` in ``workers`` processes (default: CPU cores) with one progress bar; records in job order.

    A job whose cache key (:mod:`repro.run_cache`) has a record is not run again (scripts share runs: Figure 4 plots
    Table 1's, Table 3 reuses its cross-family rows); ``use_cache=False`` reruns every job (and caches the new
    records). Identical jobs in one plan run once. Each record carries ``cache: {key, reused}``.
    """
    with run_lock.hold(Path(cache_dir).parent, "lab runs"):  # the cache and the jobs' work folders beside it
        return _run_jobs(jobs, cache_dir, workers, desc, use_cache, fresh_after)


def _run_jobs(jobs, cache_dir, workers, desc, use_cache, fresh_after) -> list[dict]:
    cache = RunCache(cache_dir, fresh_after=fresh_after)
    keys = {job.name: cache.key(job_settings(job), job_models(job)) for job in jobs}
    done: dict[RunKey, dict] = {}
    if use_cache:
        for job in jobs:
            record = cache.load(keys[job.name])
            if record is not None:
                done[keys[job.name]] = record
    unique: dict[RunKey, LabJob] = {}
    for job in jobs:  # identical jobs (same key) run once, as the first of them
        if keys[job.name] not in done:
            unique.setdefault(keys[job.name], job)
    todo = list(unique.values())
    reasons = [cache.why_missing(keys[j.name]) for j in todo] if use_cache else []
    reused = sum(keys[j.name] in done for j in jobs)
    print(f"[{desc}] " + reuse_report(len(jobs), reused, reasons, shared=len(jobs) - reused - len(todo),
                                      use_cache=use_cache), flush=True)
    if todo:
        _run_pool(todo, workers, desc, done, keys, cache)
    identity = ("name", "row", "label", "variant", "teacher", "work_dir")
    ran = {keys[j.name] for j in todo}
    out = []
    for job in jobs:
        key = keys[job.name]
        record = {k: v for k, v in done[key].items() if k != "cache"}
        record.update({k: getattr(job, k) for k in identity})
        record["cache"] = {"key": str(key), "reused": key not in ran}
        out.append(record)
    return out


def _run_pool(jobs: list[LabJob], workers: int | None, desc: str, done: dict, keys: dict, cache: RunCache) -> None:
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    env_before = {name: os.environ.get(name) for name in JOB_ENV}
    os.environ.update(JOB_ENV)  # inherited by the spawned workers, which read them when they start
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_end_with_parent,
                                 initargs=(os.getpid(),)) as pool, \
                tqdm(total=len(jobs), desc=desc, unit="run") as bar:
            futures = {pool.submit(_run_logged, job): job for job in jobs}
            failed = []
            for future in as_completed(futures):
                job = futures[future]
                try:
                    record = future.result()
                except Exception as err:  # the others go on and are cached; all failures are reported at the end
                    failed.append(str(err))
                    bar.update()
                    continue
                done[keys[job.name]] = record
                cache.store(keys[job.name], record)
                bar.set_postfix_str(f"{job.name}: " + " ".join(f"{k.removeprefix('tgpo_lab_')}={v:.2f}"
                                                             for k, v in record["scores"].items() if k != "tgpo_lab"))
                bar.update()
        if failed:
            raise LabJobError(f"{len(failed)} of {len(jobs)} lab runs failed: " + "; ".join(failed))
    finally:
        for name, value in env_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
