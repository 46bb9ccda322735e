"""Bounded verdicts in worker processes: the grader's typed jobs (:mod:`tgpo.grading.jobs`) run in small
persistent ``subprocess`` children speaking JSON lines, each verdict within its own compute budget.

Hand-written rather than pebble: pebble starts workers through multiprocessing, whose spawn/forkserver children
re-import the caller's ``__main__`` (a training script without a main guard would re-run in every worker) and
whose fork children inherit the caller's threads; plain subprocess workers avoid both, and a replacement for a
killed worker (~1 s to import Math-Verify and sympy) starts in the background.

A worker takes a list of jobs per line and answers one ``1``/``0`` line per job as soon as it is decided, so the
parent times every verdict on its own.

Faults. Only a verdict that overruns its compute budget is wrong by the pool's hand. A worker that dies (the OOM
killer, a signal, a crash) is not a verdict: its unanswered jobs rerun on a fresh worker, and every death is
counted (:func:`worker_deaths`) and logged. A job that has killed :data:`MAX_DEATHS_PER_JOB` workers in a row is
the cause, not the victim: it is then wrong, with an error logged. Workers exit when their parent process dies
(a thread watches the parent's pid: ``PR_SET_PDEATHSIG`` would fire when the *thread* that started a worker ends,
and replacements are started from short-lived threads). Jobs about one gold go to one worker, where its parse caches
(:mod:`tgpo.grading.mathverify`) serve the whole group. Decided verdicts go to the one verdict cache
(:mod:`tgpo.grading.cache`), which answers a job asked again without a worker.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tgpo.grading.cache import VERDICTS
from tgpo.grading.jobs import Job, from_wire, prepare_worker, run_job, to_wire

__all__ = ["MAX_DEATHS_PER_JOB", "WORKER_START_TIMEOUT_S", "run", "warmup", "worker_deaths"]

#: How long a fresh worker may take to import Math-Verify before we give up on it (rare: a loaded machine); also
#: how long a batch waits for a free worker (waiting is not a verdict's compute).
WORKER_START_TIMEOUT_S = 60.0
#: Workers one job may kill before it is counted wrong (a job that crashes every interpreter it meets).
MAX_DEATHS_PER_JOB = 3
#: Fresh workers one batch may fail to start in a row before its jobs are computed in the caller instead.
MAX_FAILED_STARTS = 3
#: How often a worker checks that its parent is alive, seconds.
PARENT_WATCH_S = 0.5
#: The environment variable that gives a worker its parent's pid.
PARENT_PID_ENV = "TGPO_GRADER_PARENT_PID"

log = logging.getLogger("tgpo.grading")


def _exit_with_parent() -> None:  # pragma: no cover - runs in the child process
    """Exit at once when the process that started this worker is gone (the worker is then re-parented)."""
    parent = int(os.environ.get(PARENT_PID_ENV) or os.getppid())

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_WATCH_S)
        os._exit(0)

    threading.Thread(target=watch, name="tgpo-parent-watch", daemon=True).start()


def worker_main() -> None:  # pragma: no cover - runs in the child process
    """Entry point of a verdict worker: a JSON list of jobs per line in; one ``1``/``0`` line per job out, each
    written as soon as it is decided (the parent times every verdict on its own)."""
    try:
        import resource

        limit = 4 * 1024**3  # a runaway sympy expression fails inside the worker, not the machine
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception:
        pass
    _exit_with_parent()
    logging.disable(logging.CRITICAL)  # Math-Verify warns on every call that its timeouts are off
    prepare_worker()
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        try:
            jobs = [from_wire(j) for j in json.loads(line)]
        except Exception:
            jobs = []
        for job in jobs:
            out.write(b"1\n" if run_job(job) else b"0\n")
            out.flush()


# --------------------------------------------------------------------------------------------------------
# The pool
# --------------------------------------------------------------------------------------------------------


class WorkerDied(Exception):
    """A verdict worker ended without answering (its exit status, in words, is the message)."""


class _Worker:
    """One child process; used by one verdict at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])  # this tgpo, installed or not, for the child
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["OMP_NUM_THREADS"] = "1"
        env[PARENT_PID_ENV] = str(os.getpid())
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tgpo.grading.pool import worker_main; worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
            env=env,
            close_fds=True,
        )
        self._buf = b""
        self.ready = False

    def _readline(self, deadline: float) -> bytes | None:
        """The next line; ``None`` at the deadline; :class:`WorkerDied` when the worker's output ends."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            r, _, _ = select.select([fd], [], [], remaining)
            if not r:
                return None
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:  # EOF: the worker died
                raise WorkerDied(self.exit_status())
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def wait_ready(self) -> bool:
        """Whether the worker has started (``False`` if it died or took longer than its start-up time)."""
        if not self.ready:
            try:
                self.ready = self._readline(time.monotonic() + WORKER_START_TIMEOUT_S) == b"ready"
            except WorkerDied:
                return False
        return self.ready

    def exit_status(self) -> str:
        """How the worker ended, in words (it has closed its output: it ends within moments)."""
        try:
            code = self.proc.wait(timeout=2)
        except Exception:  # noqa: BLE001 - still running, or already reaped
            return "output closed"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def is_ready_now(self) -> bool:
        """Ready without waiting (a replacement may still be importing)."""
        if not self.ready and select.select([self.proc.stdout.fileno()], [], [], 0)[0]:
            return self.wait_ready()
        return self.ready

    def send(self, jobs: list[Job]) -> bool:
        try:
            self.proc.stdin.write(json.dumps([to_wire(j) for j in jobs]).encode() + b"\n")
            return True
        except OSError:
            return False

    def verdict(self, timeout: float) -> bool | None:
        """The next job's verdict; ``None`` if it overran ``timeout`` (kill the worker then); :class:`WorkerDied`
        if the worker died first."""
        line = self._readline(time.monotonic() + timeout)
        return None if line is None else line == b"1"

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass


class _Pool:
    """Idle workers, handed out one per concurrent verdict (threads never share a worker)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._idle: list[_Worker] = []
        self._total = 0
        self.broken = False  # workers cannot start here: verdicts run in the caller
        self.deaths = 0  # workers that died with a job in flight (or while starting)

    @staticmethod
    def size() -> int:
        return int(os.environ.get("TGPO_SCORER_WORKERS") or max(2, min(4, os.cpu_count() or 2)))

    def acquire(self, deadline: float) -> _Worker | None:
        with self._cond:
            while True:
                if self._idle:  # a ready worker first: a verdict should not wait for a replacement's start-up
                    ready = [i for i, w in enumerate(self._idle) if w.is_ready_now()]
                    return self._idle.pop(ready[-1] if ready else -1)
                if self._total < self.size():
                    self._total += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    return None
        try:
            return _Worker()
        except Exception:  # noqa: BLE001 - e.g. no fork/exec allowed in a sandbox
            with self._cond:
                self._total -= 1
                self.broken = True
            return None

    def release(self, worker: _Worker, healthy: bool) -> None:
        if not healthy:  # killing (a worker deep in sympy may hold GBs) and replacing it: not the caller's time
            threading.Thread(target=self._replace, args=(worker,), daemon=True).start()
            return
        with self._cond:
            self._idle.append(worker)
            self._cond.notify()

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        try:
            fresh = _Worker()
        except Exception:  # noqa: BLE001
            with self._cond:
                self._total -= 1
                self._cond.notify()
            return
        with self._cond:
            self._idle.append(fresh)
            self._cond.notify()

    def count_death(self) -> int:
        with self._cond:
            self.deaths += 1
            return self.deaths

    def pids(self) -> list[int]:
        """Process ids of the idle workers (busy ones are held by the threads that use them)."""
        with self._cond:
            return [w.proc.pid for w in self._idle]

    def shutdown(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            self._total -= len(idle)
        for w in idle:
            w.kill()


_POOL = _Pool()
atexit.register(_POOL.shutdown)

def _bounded(jobs: Sequence[Job], timeout: float) -> list[bool]:
    """Verdicts of ``jobs``, run one after another in one worker so that they share its parse caches (a job
    asked twice runs once); each verdict gets ``timeout`` seconds of compute and is wrong if it overruns. A
    worker that dies is replaced and its unanswered jobs rerun (see the module docstring)."""
    known = {j: VERDICTS.get(j) for j in dict.fromkeys(jobs)}
    todo = [j for j, v in known.items() if v is None]
    deaths: dict[Job, int] = {}
    failed_starts = 0
    while todo:
        if _POOL.broken or failed_starts >= MAX_FAILED_STARTS:  # no workers here: Math-Verify's own timeouts are
            if not _POOL.broken:  # off, the in-caller pre-filters still apply
                log.error("grader: %d verdict workers in a row failed to start; computing %d verdicts in this "
                          "process, without a time limit", failed_starts, len(todo))
            known.update((j, run_job(j)) for j in todo)
            break
        worker = _POOL.acquire(time.monotonic() + WORKER_START_TIMEOUT_S)  # waiting is not compute
        if worker is None:
            if not _POOL.broken:  # every worker stayed busy past the start-up time: as a timeout, wrong
                known.update((j, False) for j in todo)
                break
            continue
        started = worker.wait_ready()
        if not started or not worker.send(todo):  # it did not start, or died idle: no job was in flight
            _POOL.release(worker, healthy=False)
            failed_starts += not started
            n = _POOL.count_death()
            log.warning("grader: a verdict worker (pid %d) %s; using a fresh one (%d worker deaths so far)",
                        worker.proc.pid, "failed to start" if not started else "had died", n)
            continue
        failed_starts = 0
        for i, job in enumerate(todo):
            try:
                verdict = worker.verdict(timeout)
            except WorkerDied as died:
                _POOL.release(worker, healthy=False)
                n = _POOL.count_death()
                deaths[job] = deaths.get(job, 0) + 1
                if deaths[job] >= MAX_DEATHS_PER_JOB:
                    log.error("grader: a job killed %d verdict workers in a row (last: pid %d, %s); counted wrong: "
                              "%.200r", deaths[job], worker.proc.pid, died, job)
                    known[job] = False
                    i += 1
                else:
                    log.warning("grader: verdict worker pid %d died (%s) with a job in flight; rerunning its %d "
                                "unanswered job(s) on a fresh worker (%d worker deaths so far)", worker.proc.pid,
                                died, len(todo) - i, n)
                todo = todo[i:]
                break
            if verdict is None:  # overran its budget (not cached: load may have been the cause)
                _POOL.release(worker, healthy=False)
                known[job] = False
                todo = todo[i + 1 :]
                break
            known[job] = verdict
            VERDICTS.put(job, verdict)
        else:
            _POOL.release(worker, healthy=True)
            todo = []
    return [bool(known[j]) for j in jobs]


_THREADS = None
_THREADS_LOCK = threading.Lock()


#: Jobs sent to one worker at once: enough to share its parse caches, few enough to spread over the workers.
_UNIT_JOBS = 64


def run(groups: Sequence[Sequence[bool | Job]], timeout: float) -> list[list[bool]]:
    """Verdicts for groups of decided booleans and worker jobs (one group per completion). Jobs about one gold
    go to the same worker, where its gold and answers are parsed once; the units run on every worker at once."""
    global _THREADS
    out = [[j if isinstance(j, bool) else False for j in g] for g in groups]
    places = [(gi, ji) for gi, g in enumerate(groups) for ji, job in enumerate(g) if not isinstance(job, bool)]
    places.sort(key=lambda place: groups[place[0]][place[1]].gold)  # stable: a completion's grades stay together
    size = max(1, min(_UNIT_JOBS, -(-len(places) // _Pool.size())))  # every worker gets a share
    units = [places[i : i + size] for i in range(0, len(places), size)]

    def run(unit):
        return _bounded([groups[gi][ji] for gi, ji in unit], timeout)

    if len(units) == 1:
        results = [run(units[0])]
    elif units:
        with _THREADS_LOCK:
            if _THREADS is None:
                from concurrent.futures import ThreadPoolExecutor

                _THREADS = ThreadPoolExecutor(max_workers=_Pool.size(), thread_name_prefix="tgpo-verdict")
        results = list(_THREADS.map(run, units))
    else:
        results = []
    for unit, verdicts in zip(units, results):
        for (gi, ji), v in zip(unit, verdicts):
            out[gi][ji] = v
    return out


def worker_deaths() -> int:
    """Verdict workers that have died in this process so far, with a job in flight or while starting."""
    return _POOL.deaths


def warmup(n: int | None = None) -> bool:
    """Start ``n`` verdict workers (default: all) now, so the first real verdicts do not pay ~1 s each.
    Returns success."""
    n = min(n or _Pool.size(), _Pool.size())
    workers = [w for w in (_POOL.acquire(time.monotonic() + WORKER_START_TIMEOUT_S) for _ in range(n)) if w]
    ok = bool(workers)
    for w in workers:
        ready = w.wait_ready()
        ok = ok and ready
        _POOL.release(w, ready)
    return ok or _POOL.broken
