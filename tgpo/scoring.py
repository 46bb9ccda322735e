"""One grader for reward and evaluation (SPEC §4).

Two verdict functions, shared by the trainer's reward and by every lm-eval task in ``tasks/``:

- :func:`math_correct` — free-form math answers, compared with Math-Verify.
- :func:`choice_correct` — multiple-choice letters ``A``–``J``.

Protocol (both functions):

1. Text up to the last ``</think>`` is dropped. A ``<think>`` that never closes means the model never
   reached its answer: the verdict is ``False``.
2. Math: only the **last** ``\\boxed{...}`` (or ``\\fbox{...}``) counts. There is no unanchored fallback, so a
   truncated output never gets credit for a stray number. Gold and prediction are both parsed as
   ``parse(f"${x}$", [LatexExtractionConfig(), ExprExtractionConfig()])`` and compared with
   ``verify(gold, pred)``.
3. Choice: the last of ``ANSWER: X``, ``\\boxed{X}`` or "answer is (X)" wins.

Bounded verdicts: Math-Verify's own timeouts use ``signal.alarm`` and refuse to run outside the main thread.
Here they are switched off and Math-Verify runs in small persistent worker processes (plain ``subprocess``
children speaking JSON lines — no fork of the caller, no signals). Each verdict gets a compute budget
(:data:`VERDICT_TIMEOUT_S`); a worker that overruns is killed, replaced, and the verdict is ``False``. Cheap
pre-filters (power towers, absurdly long answers) reject pathological input before it reaches sympy, and an
exact-string fast path answers the common case without any IPC. The functions never raise: a wrong,
unparseable or malformed answer is ``False``.

This module imports neither lm-eval nor TRL, and Math-Verify only inside the workers (or the in-process
fallback), so it stays cheap to import.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

__all__ = [
    "VERDICT_TIMEOUT_S",
    "choice_correct",
    "extract_choice",
    "extract_last_boxed",
    "math_correct",
    "math_correct_batch",
    "strip_think",
    "warmup",
]

#: Compute budget of one math verdict, seconds. A verdict returns within this budget plus (only when a fresh
#: worker is needed) the worker's start-up (~1 s); the total stays under 5 s.
VERDICT_TIMEOUT_S = 3.0
#: How long a fresh worker may take to import Math-Verify before we give up on it (rare: a loaded machine).
WORKER_START_TIMEOUT_S = 60.0
#: Box contents longer than this are rejected without parsing (no benchmark answer comes close).
MAX_ANSWER_CHARS = 1000
#: Completions longer than this are rejected (a 8192-token output is ~40k characters).
MAX_COMPLETION_CHARS = 1_000_000

CHOICE_LETTERS = "ABCDEFGHIJ"

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


# --------------------------------------------------------------------------------------------------------
# Pure text helpers
# --------------------------------------------------------------------------------------------------------


def strip_think(completion: str) -> str | None:
    """The answer part of a completion: the text after the last ``</think>``.

    Returns ``None`` when a ``<think>`` was opened and never closed (no answer was given). A completion
    without any think tags is returned unchanged.
    """
    close = completion.rfind(_THINK_CLOSE)
    if close >= 0:
        return completion[close + len(_THINK_CLOSE) :]
    if _THINK_OPEN in completion:
        return None
    return completion


_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_SPACE_RE = re.compile(r"\\boxed +([^\s$]+)")


def _balanced(text: str, open_idx: int) -> str | None:
    """Content of the brace group whose ``{`` is at ``open_idx``; ``None`` if it never closes."""
    depth = 0
    i = open_idx
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":  # skip escaped characters such as \{ and \}
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_idx + 1 : i]
        i += 1
    return None


def extract_last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed x``) in ``text``.

    An unclosed last box (truncated output) does not count, and neither does an earlier box then: the last
    box the model *started* is its answer.
    """
    last_brace = None
    for m in _BOX_RE.finditer(text):
        last_brace = m
    last_space = None
    for m in _BOX_SPACE_RE.finditer(text):
        last_space = m
    if last_brace is None and last_space is None:
        return None
    if last_space is not None and (last_brace is None or last_space.start() > last_brace.start()):
        return last_space.group(1)
    return _balanced(text, last_brace.end() - 1)


_ANSWER_LINE_RE = re.compile(r"(?i:answer)\s*[:：]\s*(?:\*\*)?\s*\$?\s*(?:\\text\{)?\(?([A-J])\)?(?![A-Za-z0-9])")
_ANSWER_IS_RE = re.compile(
    r"(?i:answer\s+is)\s*:?\s*(?:\*\*)?\s*\$?\s*(?:\\boxed\{)?(?:\\text\{)?\(?([A-J])\)?(?![A-Za-z0-9])"
)
_BOXED_LETTER_RE = re.compile(r"^\s*(?:\\(?:text|textbf|mathrm|mathbf)\s*\{)?\s*\(?\s*([A-J])\s*\)?\s*\}?\s*(?:[).:]|$)")


def extract_choice(completion: str) -> str | None:
    """The chosen letter (``A``–``J``) of a multiple-choice completion, or ``None``.

    Looks (after the think block) for ``ANSWER: X``, ``\\boxed{X}`` and "answer is (X)"; the last one in the
    text wins.
    """
    if not isinstance(completion, str) or len(completion) > MAX_COMPLETION_CHARS:
        return None
    text = strip_think(completion)
    if text is None:
        return None
    best: tuple[int, str] | None = None
    for rx in (_ANSWER_LINE_RE, _ANSWER_IS_RE):
        for m in rx.finditer(text):
            if best is None or m.start(1) > best[0]:
                best = (m.start(1), m.group(1))
    for m in _BOX_RE.finditer(text):
        content = _balanced(text, m.end() - 1)
        if content is None:
            continue
        lm = _BOXED_LETTER_RE.match(content)
        if lm and (best is None or m.start() > best[0]):
            best = (m.start(), lm.group(1))
    return None if best is None else best[1]


def _normalise_letter(gold) -> str | None:
    if not isinstance(gold, str):
        return None
    g = gold.strip().strip("()").strip().upper()
    return g if len(g) == 1 and g in CHOICE_LETTERS else None


def choice_correct(completion: str, gold: str) -> bool:
    """Whether ``completion`` picks the letter ``gold`` (``A``–``J``). Never raises."""
    try:
        letter = _normalise_letter(gold)
        return letter is not None and extract_choice(completion) == letter
    except Exception:  # pragma: no cover - defensive: a verdict never raises
        return False


# --------------------------------------------------------------------------------------------------------
# Math verdicts
# --------------------------------------------------------------------------------------------------------

_HUGE_FACTORIAL_RE = re.compile(r"\d{4,}\s*!")


_DOLLAR_RE = re.compile(r"(?<!\\)\$")
_SCI_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))[eE]([+-]?\d+)$")


def _clean_answer(s: str) -> str:
    """Answer text without math delimiters: OlympiadBench packages ``$69$,$84$``; some models box ``\\(x\\)``."""
    s = s.strip()
    if s.startswith("\\(") and s.endswith("\\)"):
        s = s[2:-2]
    s = _DOLLAR_RE.sub("", s).strip()  # unescaped $ only: \\$5 keeps its dollar sign
    m = _SCI_RE.match(s)  # Minerva's "4.5e33": LaTeX would read e as Euler's number
    if m:
        s = f"{m.group(1)}\\times 10^{{{int(m.group(2))}}}"
    return s


def _squash(s: str) -> str:
    s = re.sub(r"\s+|\\[,;! ]|\\(?:left|right)(?![A-Za-z])", "", s)
    return s.rstrip(".")


def _power_depth(s: str, budget: int = 8) -> int:
    """Nesting depth of exponents: ``x^2 + y^2`` is 1, ``a^{b^{c}}`` is 2, ``9^{9^{9^{9}}}`` is 4."""
    if budget <= 0:
        return 99
    depth, i, n = 0, 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c in "^":
            j = i + 1
            while j < n and s[j] == " ":
                j += 1
            if j < n and s[j] == "{":
                inner = _balanced(s, j)
                if inner is None:
                    return depth
                depth = max(depth, 1 + _power_depth(inner, budget - 1))
                i = j + len(inner) + 2
                continue
            depth = max(depth, 1)
        i += 1
    return depth


_PLAIN_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_FRAC_RE = re.compile(r"^([+-]?)\s*\\[dt]?frac\s*\{\s*([+-]?\d+)\s*\}\s*\{\s*([+-]?\d+)\s*\}$")
_SLASH_RE = re.compile(r"^([+-]?\d+)\s*/\s*([+-]?\d+)$")


def _rational(s: str) -> tuple[Fraction, bool] | None:
    """``(value, has_decimal_point)`` of a plain number or integer fraction, else ``None``."""
    if len(s) > 200:
        return None
    try:
        if _PLAIN_NUMBER_RE.match(s):
            return Fraction(Decimal(s)), "." in s
        m = _FRAC_RE.match(s)
        if m:
            v = Fraction(int(m.group(2)), int(m.group(3)))
            return (-v if m.group(1) == "-" else v), False
        m = _SLASH_RE.match(s)
        if m:
            return Fraction(int(m.group(1)), int(m.group(2))), False
    except (ArithmeticError, ValueError):
        return None
    return None


def _plain_number_verdict(pred: str, gold: str) -> bool | None:
    """Exact verdict when both sides are plain numbers or integer fractions and it is certain, else ``None``
    (ask Math-Verify). Equal values are equal; two different exact rationals (no decimal point) differ;
    decimals that differ are left to Math-Verify's rounding rules."""
    a = _rational(_squash(pred))
    if a is None:
        return None
    b = _rational(_squash(gold))
    if b is None:
        return None
    if a[0] == b[0]:
        return True
    if not a[1] and not b[1]:
        return False
    return None


def _pathological(s: str) -> bool:
    """Input that could keep sympy busy for minutes: rejected before it reaches a worker."""
    return len(s) > MAX_ANSWER_CHARS or _power_depth(s) >= 3 or bool(_HUGE_FACTORIAL_RE.search(s))


@functools.lru_cache(maxsize=8192)
def _parse_gold_inprocess(gold: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    return parse(f"${gold}$", [LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=None)


def _verify_inprocess(pred: str, gold: str) -> bool:
    """Math-Verify with its signal timeouts off. Runs inside a worker (or the fallback path)."""
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        g = _parse_gold_inprocess(gold)
        if not g:
            return False
        p = parse(f"${pred}$", [LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=None)
        if not p:
            return False
        return bool(verify(g, p, timeout_seconds=None))
    except BaseException:  # noqa: BLE001 - RecursionError, MemoryError, sympy internals: all mean "no"
        return False


def _worker_main() -> None:  # pragma: no cover - runs in the child process
    """Entry point of a verdict worker: JSON lines in (``{"p": pred, "g": gold}``), ``1``/``0`` lines out."""
    import logging

    try:
        import resource

        limit = 4 * 1024**3
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception:
        pass
    logging.disable(logging.CRITICAL)
    import math_verify  # noqa: F401 - import before announcing readiness

    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line)
            ok = _verify_inprocess(req["p"], req["g"])
        except Exception:
            ok = False
        out.write(b"1\n" if ok else b"0\n")
        out.flush()


class _Worker:
    """One child process; used by one verdict at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["OMP_NUM_THREADS"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tgpo.scoring import _worker_main; _worker_main()"],
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
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            r, _, _ = select.select([fd], [], [], remaining)
            if not r:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:  # EOF: the worker died
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def wait_ready(self) -> bool:
        if not self.ready:
            self.ready = self._readline(time.monotonic() + WORKER_START_TIMEOUT_S) == b"ready"
        return self.ready

    def ask(self, pred: str, gold: str, timeout: float) -> bool | None:
        """``True``/``False``; ``None`` if the worker overran or died (it must then be killed)."""
        try:
            self.proc.stdin.write(json.dumps({"p": pred, "g": gold}).encode() + b"\n")
        except OSError:
            return None
        line = self._readline(time.monotonic() + timeout)
        if line is None:
            return None
        return line == b"1"

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

    def __init__(self, max_workers: int = 8) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._idle: list[_Worker] = []
        self._total = 0
        self._max = max_workers
        self.broken = False  # workers cannot start here: use the in-process fallback

    def acquire(self, deadline: float) -> _Worker | None:
        with self._cond:
            while True:
                if self._idle:
                    return self._idle.pop()
                if self._total < self._max:
                    self._total += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    return None
        try:
            return _Worker()
        except Exception:
            with self._cond:
                self._total -= 1
                self.broken = True
            return None

    def release(self, worker: _Worker, healthy: bool) -> None:
        if healthy:
            with self._cond:
                self._idle.append(worker)
                self._cond.notify()
            return
        worker.kill()
        with self._cond:
            self._total -= 1
        # start the replacement now, so its import overlaps with whatever the caller does next
        try:
            fresh = _Worker()
        except Exception:
            fresh = None
        with self._cond:
            if fresh is not None:
                self._total += 1
                self._idle.append(fresh)
            self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            self._total -= len(idle)
        for w in idle:
            w.kill()


_POOL = _Pool()
_CACHE_SIZE = 65536
_VERDICT_CACHE: OrderedDict[tuple[str, str], bool] = OrderedDict()  # (pred, gold) -> verdict, FIFO-bounded
_CACHE_LOCK = threading.Lock()
atexit.register(_POOL.shutdown)


def warmup(n: int = 1) -> bool:
    """Start ``n`` verdict workers now (so the first real verdicts do not pay ~1 s each). Returns success."""
    workers = [w for w in (_POOL.acquire(time.monotonic() + WORKER_START_TIMEOUT_S) for _ in range(n)) if w]
    ok = bool(workers)
    for w in workers:
        ready = w.wait_ready()
        ok = ok and ready
        _POOL.release(w, ready)
    return ok


def _verify_bounded(pred: str, gold: str, timeout: float) -> bool | None:
    """Math-Verify's verdict within ``timeout``; ``None`` when no verdict came (overrun, no worker)."""
    if _POOL.broken:
        # Fallback without worker processes: Math-Verify's own (signal) timeouts in the main thread;
        # elsewhere only pre-filtered input reaches this point.
        return _verify_inprocess(pred, gold)
    worker = _POOL.acquire(time.monotonic() + timeout)
    if worker is None:
        return _verify_inprocess(pred, gold) if _POOL.broken else None
    if not worker.wait_ready():
        _POOL.release(worker, healthy=False)
        return None
    verdict = worker.ask(pred, gold, timeout)
    _POOL.release(worker, healthy=verdict is not None)
    return verdict


def math_correct(completion: str, gold: str, *, timeout: float = VERDICT_TIMEOUT_S) -> bool:
    """Whether the last ``\\boxed{}`` of ``completion`` (after any think block) equals ``gold``.

    Math-Verify decides equivalence (``verify(gold, pred)``). Never raises; returns within ``timeout`` seconds
    of compute (plus a worker start-up when one is needed), from any thread.
    """
    try:
        if isinstance(gold, (int, float)) and not isinstance(gold, bool):
            gold = str(gold)
        if not isinstance(completion, str) or not isinstance(gold, str):
            return False
        if len(completion) > MAX_COMPLETION_CHARS:
            return False
        answer = strip_think(completion)
        if answer is None:
            return False
        boxed = extract_last_boxed(answer)
        if boxed is None:
            return False
        pred = _clean_answer(boxed)
        gold_s = _clean_answer(gold)
        if not pred or not gold_s:
            return False
        if _squash(pred) == _squash(gold_s):
            return True
        fast = _plain_number_verdict(pred, gold_s)
        if fast is not None:
            return fast
        if _pathological(pred) or _pathological(gold_s):
            return False
        key = (pred, gold_s)
        with _CACHE_LOCK:
            cached = _VERDICT_CACHE.get(key)
        if cached is not None:
            return cached
        verdict = _verify_bounded(pred, gold_s, timeout)
        if verdict is None:
            return False  # overran its budget (not cached: load may have been the cause)
        with _CACHE_LOCK:
            _VERDICT_CACHE[key] = verdict
            if len(_VERDICT_CACHE) > _CACHE_SIZE:
                _VERDICT_CACHE.popitem(last=False)
        return verdict
    except Exception:  # pragma: no cover - defensive: a verdict never raises
        return False


_BATCH_POOL = None
_BATCH_LOCK = threading.Lock()


def math_correct_batch(
    completions: list[str], golds: list[str] | str, *, timeout: float = VERDICT_TIMEOUT_S
) -> list[bool]:
    """:func:`math_correct` over many completions (one gold for all, or one each), verdicts in parallel.

    Threads hand distinct completions to distinct worker processes, so a batch uses every core (the k samples
    of one problem, a reward batch). Same verdicts and bounds as :func:`math_correct`.
    """
    global _BATCH_POOL
    if isinstance(golds, str) or not isinstance(golds, (list, tuple)):
        golds = [golds] * len(completions)
    if len(completions) <= 1:
        return [math_correct(c, g, timeout=timeout) for c, g in zip(completions, golds)]
    with _BATCH_LOCK:
        if _BATCH_POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _BATCH_POOL = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)))
    return list(_BATCH_POOL.map(lambda cg: math_correct(cg[0], cg[1], timeout=timeout), zip(completions, golds)))
