"""The grader's one verdict cache: job -> verdict, in the calling process.

Every decided verdict of a worker job (:mod:`tgpo.grading.jobs`) is kept here, so a job asked again (the same
answer in another sample, the same completion graded by an lm-eval filter and then by ``process_results``) is
answered without a worker. Keys are a digest of the job, so whole responses (the authors' jobs) cost a few dozen
bytes each; the cache is bounded (least recently used out). It is a memo only: a miss recomputes the same verdict.
A verdict that overran its compute budget is never kept (load may have been the cause).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

__all__ = ["VerdictCache", "VERDICTS"]

#: Jobs the cache keeps: a task's worth (83 AMC problems x 32 samples x 2 grades is 5,312) many times over.
CAPACITY = 1 << 18


class VerdictCache:
    """A thread-safe, bounded map of jobs (any JSON-able tuple, e.g. a typed job) to verdicts."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._verdicts: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(job: tuple) -> bytes:
        text = json.dumps([type(job).__name__, *job], ensure_ascii=False)
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get(self, job: tuple) -> bool | None:
        key = self.key(job)
        with self._lock:
            verdict = self._verdicts.get(key)
            if verdict is not None:
                self._verdicts.move_to_end(key)
            return verdict

    def put(self, job: tuple, verdict: bool) -> None:
        key = self.key(job)
        with self._lock:
            self._verdicts[key] = bool(verdict)
            self._verdicts.move_to_end(key)
            while len(self._verdicts) > self.capacity:
                self._verdicts.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._verdicts.clear()

    def __len__(self) -> int:
        return len(self._verdicts)


#: The cache every verdict of this process goes through.
VERDICTS = VerdictCache()
