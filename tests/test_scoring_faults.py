"""The grader under faults (issue 25): a verdict worker that dies is not a verdict, and workers do not outlive
their parent. Linux only (the tests find the workers through /proc)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tgpo.grading import math_correct_batch, pool, warmup

pytestmark = pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task").is_dir(), reason="needs Linux /proc")

ROOT = Path(__file__).resolve().parents[1]


def worker_pids(parent: int) -> list[int]:
    """Verdict workers among ``parent``'s children."""
    pids = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                if b"worker_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(int(pid))
            except OSError:
                pass
    return pids


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cpu_ticks(pid: int) -> int:
    """User plus system CPU ticks that ``pid`` has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def busy_worker(pids: list[int], before: dict[int, int], wait_s: float) -> int | None:
    """The first of ``pids`` whose CPU time grows past ``before`` (it is computing verdicts) within ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for pid in pids:
            if cpu_ticks(pid) > before[pid]:
                return pid
        time.sleep(0.005)
    return None


def test_a_killed_worker_never_turns_a_right_answer_wrong(caplog):
    """SIGKILL one worker while a batch of right answers is in flight: every verdict stays right, the death is
    counted and logged. (Before: the job in flight, and every sample sharing it, came back wrong, silently.)
    The victim is a worker seen computing (its CPU time grows), not one picked after a fixed sleep: on a quiet
    machine the batch can finish within a second."""
    assert warmup()
    tag = uuid.uuid4().int % 10**6  # answers this process has never graded: nothing comes from the cache
    n = 3000  # unique jobs: a few seconds of verdicts on a quiet machine, so the kill lands mid-batch
    golds = [str(tag + k) for k in range(n)]
    completions = [rf"so \boxed{{\sqrt{{{(tag + k) ** 2}}}}}" for k in range(n)]  # Math-Verify decides each
    completions, golds = completions * 2, golds * 2  # identical jobs: deduplicated, so they flip together
    deaths = pool.worker_deaths()
    workers = worker_pids(os.getpid())
    assert workers, "no verdict workers after warmup()"
    idle = {pid: cpu_ticks(pid) for pid in workers}
    got: list = []
    batch = threading.Thread(target=lambda: got.extend(math_correct_batch(completions, golds, timeout=60)))
    with caplog.at_level(logging.WARNING, logger="tgpo.grading"):
        batch.start()
        victim = busy_worker(workers, idle, wait_s=30.0)
        assert victim and batch.is_alive(), "no worker was seen computing while the batch ran"
        os.kill(victim, signal.SIGKILL)
        batch.join(300)
    assert len(got) == len(completions)
    assert all(got), f"{got.count(False)} right answers graded wrong after a worker was killed"
    assert pool.worker_deaths() > deaths
    assert any("died" in r.getMessage() and str(victim) in r.getMessage() for r in caplog.records)


SLOW_JOB = "(x+y+z+1)^{25}", "(x+y+z-1)^{25}"  # ~20 s of sympy in one verdict


def test_workers_exit_when_their_parent_dies():
    """A worker busy in a long verdict exits within moments of its parent's SIGKILL (before: it went on until
    the verdict was done, and stdin's end was noticed only then)."""
    script = (
        "import sys, threading, time\n"
        "from tgpo.grading import pool\n"
        "from tgpo.grading.jobs import StrictJob\n"
        "assert pool.warmup(1)\n"
        f"job = StrictJob({SLOW_JOB[0]!r}, {SLOW_JOB[1]!r})\n"
        "threading.Thread(target=pool.run, args=([[job]], 600.0), daemon=True).start()\n"
        "print('busy', flush=True)\n"
        "time.sleep(600)\n"
    )
    env = dict(os.environ, TGPO_SCORER_WORKERS="1", PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert parent.stdout.readline().strip() == "busy"
        time.sleep(1.0)  # the job is in the worker now
        workers = worker_pids(parent.pid)
        assert workers
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.2)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:  # do not leave them running whatever the verdict
        os.kill(pid, signal.SIGKILL)
    assert not left, f"verdict workers {left} outlived their parent"
