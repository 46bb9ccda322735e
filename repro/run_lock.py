"""One run at a time into a results folder or a lab run cache: a lock file that holds the pid of the run writing there.

Two runs into the same place would each do all the work and interleave their logs and outputs. :func:`acquire`
creates ``<folder>/.tgpo-run.lock`` exclusively (``O_EXCL``) with this process's pid; a second process is refused
with the first one's pid (:class:`RunLocked`, one line) unless that process is dead, whose lock is then taken over.
Locks are re-entrant within a process (``repro.reproduce_all`` runs every script in one) and released when the
process exits; a killed run's lock is stale, not binding.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from pathlib import Path

LOCK_NAME = ".tgpo-run.lock"
#: How long a lock file may stay empty (its owner between creating and writing it) before it counts as stale.
EMPTY_LOCK_WAIT_S = 2.0

_held: dict[Path, int] = {}


class RunLocked(RuntimeError):
    """Another live process writes into the folder (the message names its pid and the lock file)."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an exited process nobody reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _owner(lock: Path) -> int | None:
    """The pid in a lock file; None when it is unreadable or stays empty for :data:`EMPTY_LOCK_WAIT_S`."""
    deadline = time.monotonic() + EMPTY_LOCK_WAIT_S
    while True:
        try:
            text = lock.read_text().strip()
        except FileNotFoundError:
            return None
        if text:
            return int(text) if text.isdigit() else None
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def acquire(folder: str | Path, what: str) -> Path:
    """Hold ``folder``'s lock for this process (until :func:`release` or exit); ``what`` words the refusal
    ("results", "lab runs"). Raises :class:`RunLocked` when a live process holds it."""
    folder = Path(folder)
    lock = (folder / LOCK_NAME).resolve()
    if lock in _held:
        _held[lock] += 1
        return lock
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(lock)
            if owner is not None and owner != os.getpid() and pid_alive(owner):
                raise RunLocked(f"another run (pid {owner}) is writing {what} into {folder}; wait for it to end or "
                                f"stop it (its lock file: {lock})") from None
            lock.unlink(missing_ok=True)  # a dead run's lock: taken over
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        _held[lock] = 1
        atexit.register(_release_at_exit, lock)
        return lock


def release(lock: Path) -> None:
    """Give back one hold of ``lock``; the file goes with the last."""
    lock = Path(lock).resolve()
    if lock not in _held:
        return
    _held[lock] -= 1
    if _held[lock] == 0:
        del _held[lock]
        with contextlib.suppress(OSError):
            if _owner(lock) == os.getpid():
                lock.unlink()


def release_all() -> None:
    """Give back every lock this process holds (a script's end, as its process's would)."""
    for lock in list(_held):
        _release_at_exit(lock)


def _release_at_exit(lock: Path) -> None:
    if lock in _held:
        _held[lock] = 1
        release(lock)


@contextlib.contextmanager
def hold(folder: str | Path, what: str):
    """:func:`acquire` for the block."""
    lock = acquire(folder, what)
    try:
        yield lock
    finally:
        release(lock)
