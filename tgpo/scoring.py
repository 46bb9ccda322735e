"""One grader for reward and evaluation, with two protocols (docs/method.md §4).

Verdict functions, shared by the trainer's reward and by every lm-eval task in ``tasks/``:

- :func:`math_correct` / :func:`math_correct_batch` — free-form math answers;
- :func:`choice_correct` — multiple-choice letters ``A``–``J``;
- :func:`grade_batch` — both protocols for many completions at once, in parallel (what the tasks use).

``protocol="strict"`` (the default and the primary metric):

1. Text up to the last ``</think>`` is dropped. A ``<think>`` that never closes (also one the prompt opened:
   ``prompt_ends_in_think=True``) means the model never reached its answer: wrong.
2. Math: only the **last** ``\\boxed{...}`` (or ``\\fbox{...}``) counts; no unanchored fallback, so a truncated
   output never gets credit for a stray number. Gold and answer are parsed as ``$x$`` with Math-Verify's LaTeX
   and expression extraction and compared with ``verify(gold, answer)``. Golds are normalised first:
   integer-valued decimals (AMC's ``142.0``) become integers. Numeric golds with ``0 < |gold| <``
   :data:`SMALL_GOLD` are compared with the relative tolerance :data:`SMALL_GOLD_REL_TOL` (Math-Verify rounds
   to six decimals, which would accept any tiny number for a tiny gold, a wrong sign or exponent included).
3. Choice: the last of ``ANSWER: X``, ``\\boxed{X}`` or "answer is (X)" wins.

``protocol="authors"`` reproduces the authors' evaluation script (``generate_vllm.py --any_true True
--add_oat_evaluate True``), for comparison with their reported numbers:

1. Only when the *prompt* ends in ``<think>\\n`` is the response split: ``"<think>\\n" + response`` is cut at
   ``</think>`` and the part after the first ``</think>`` is graded; without a ``</think>`` Math-Verify says
   wrong and the oat grader sees the unsplit text. Otherwise the **whole** response is graded.
2. Right if Math-Verify accepts it — ``verify(parse("$" + gold + "$"), parse(response))`` with ``parse``'s
   default extraction (last boxed answer, else the last LaTeX or plain expression anywhere) — **or** the
   oat-compatible boxed grader (:mod:`tgpo.oat_grader`) accepts the last ``\\boxed{}``.
3. Choice tasks go through the same math pipeline with the gold letter: a boxed letter (or one Math-Verify
   finds, e.g. ``$C$``) counts; an ``ANSWER: C`` line alone does not.

Bounded verdicts: Math-Verify's own timeouts use ``signal.alarm`` and refuse to run outside the main thread,
so they are switched off and the parsing runs in the worker processes of :mod:`tgpo.verdict_pool`. Each
verdict gets :data:`VERDICT_TIMEOUT_S` of compute; one that overruns is wrong. Batches use every worker at once.
Cheap pre-filters (power towers, absurdly long answers) and exact fast paths run in the caller, without any IPC.
A wrong, unparseable or malformed answer is ``False``, never an exception (only an unknown ``protocol`` or
``kind``, a caller's mistake, raises ``ValueError``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

from tgpo import verdict_pool
from tgpo.verdict_pool import warmup

__all__ = [
    "PROTOCOLS",
    "SMALL_GOLD",
    "SMALL_GOLD_REL_TOL",
    "VERDICT_TIMEOUT_S",
    "Verdicts",
    "choice_correct",
    "extract_choice",
    "extract_last_boxed",
    "authors_reward_v3_batch",
    "grade_batch",
    "math_correct",
    "math_correct_batch",
    "strip_think",
    "warmup",
]

PROTOCOLS = ("strict", "authors")
#: Compute budget of one verdict, seconds: a verdict that overruns is wrong (its worker is killed and replaced
#: in the background, so the verdict returns at its budget).
VERDICT_TIMEOUT_S = 3.0
#: Box contents longer than this are rejected without parsing (strict; no benchmark answer comes close).
MAX_ANSWER_CHARS = 1000
#: Completions longer than this are wrong under both protocols (an 8192-token output is ~40k characters).
MAX_COMPLETION_CHARS = 1_000_000
#: Below this magnitude Math-Verify's six-decimal rounding keeps at most three significant digits
#: (``.0000673`` and ``.0000672`` both round to ``.000067``), so the strict grade compares numbers relatively.
SMALL_GOLD = 1e-3
#: Relative tolerance for golds below :data:`SMALL_GOLD`: the answer must agree to about six significant
#: digits, as Math-Verify demands of ordinary numbers.
SMALL_GOLD_REL_TOL = 1e-6

CHOICE_LETTERS = "ABCDEFGHIJ"

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_PROMPT_THINK_PREFIX = "<think>\n"


class Verdicts(NamedTuple):
    """Both grades of one completion."""

    strict: bool
    authors: bool


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")


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


def _closing_braces(text: str) -> dict[int, int]:
    """``{open index: matching close index}`` for every closed brace group, in one pass (escapes skipped)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


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
# matched inside a box's braces (pos/endpos), so no ^ anchor: match() starts at pos
_BOXED_LETTER_RE = re.compile(r"\s*(?:\\(?:text|textbf|mathrm|mathbf)\s*\{)?\s*\(?\s*([A-J])\s*\)?\s*\}?\s*(?:[).:]|$)")


def extract_choice(completion: str) -> str | None:
    """The chosen letter (``A``–``J``) of a multiple-choice completion, or ``None``.

    Looks (after the think block) for ``ANSWER: X``, ``\\boxed{X}`` and "answer is (X)"; the last one in the
    text wins. Linear in the length of the completion.
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
    boxes = list(_BOX_RE.finditer(text))
    if boxes:
        closing = _closing_braces(text)
        for m in reversed(boxes):  # the last box with a letter in it
            if best is not None and m.start() <= best[0]:
                break
            brace = m.end() - 1
            if brace in closing:
                lm = _BOXED_LETTER_RE.match(text, brace + 1, closing[brace])
                if lm:
                    best = (m.start(), lm.group(1))
                    break
    return None if best is None else best[1]


def _normalise_letter(gold) -> str | None:
    if not isinstance(gold, str):
        return None
    g = gold.strip().strip("()").strip().upper()
    return g if len(g) == 1 and g in CHOICE_LETTERS else None


def _with_prompt_think(completion: str, prompt_ends_in_think: bool) -> str:
    return _PROMPT_THINK_PREFIX + completion if prompt_ends_in_think else completion


# --------------------------------------------------------------------------------------------------------
# Strict math: in-caller preparation and fast paths
# --------------------------------------------------------------------------------------------------------

_HUGE_FACTORIAL_RE = re.compile(r"\d{4,}\s*!")
_DOLLAR_RE = re.compile(r"(?<!\\)\$")
_SCI_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))[eE]([+-]?\d+)$")
_INTEGER_VALUED_DECIMAL_RE = re.compile(r"^([+-]?\d+)\.0*$")


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


def _normalise_gold(gold: str) -> str:
    """Gold as the strict grade compares it: cleaned, and ``142.0`` (AMC's float column) read as ``142``, so
    ``\\text{142}``, ``\\textbf{142}`` and ``142\\%`` match it as they match ``142``."""
    s = _clean_answer(gold)
    m = _INTEGER_VALUED_DECIMAL_RE.match(s)
    return m.group(1) if m else s


def _squash(s: str) -> str:
    s = re.sub(r"\s+|\\[,;! ]|\\(?:left|right)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
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


def _is_small(value) -> bool:
    return value != 0 and abs(value) < SMALL_GOLD


def _close_relative(answer, gold) -> bool:
    return abs(answer - gold) <= SMALL_GOLD_REL_TOL * abs(gold)


def _plain_number_verdict(pred: str, gold: str) -> bool | None:
    """Exact verdict when both sides are plain numbers or integer fractions and it is certain, else ``None``
    (ask Math-Verify). Equal values are equal; tiny golds are compared relatively; two different exact
    rationals (no decimal point) differ; other decimals that differ are left to Math-Verify's rounding."""
    a = _rational(_squash(pred))
    if a is None:
        return None
    b = _rational(_squash(gold))
    if b is None:
        return None
    if a[0] == b[0]:
        return True
    if _is_small(b[0]):
        return _close_relative(a[0], b[0])
    if not a[1] and not b[1]:
        return False
    return None


def _pathological(s: str) -> bool:
    """Input that could keep sympy busy for minutes: rejected before it reaches a worker."""
    return len(s) > MAX_ANSWER_CHARS or _power_depth(s) >= 3 or bool(_HUGE_FACTORIAL_RE.search(s))


def _strict_job(completion, gold, prompt_ends_in_think: bool) -> bool | tuple:
    """The strict verdict if it is decided here, else the worker job ``("strict", answer, gold)``."""
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        gold = str(gold)
    if not isinstance(completion, str) or not isinstance(gold, str) or len(completion) > MAX_COMPLETION_CHARS:
        return False
    answer = strip_think(_with_prompt_think(completion, prompt_ends_in_think))
    if answer is None:
        return False
    boxed = extract_last_boxed(answer)
    if boxed is None:
        return False
    pred, gold_s = _clean_answer(boxed), _normalise_gold(gold)
    if not pred or not gold_s:
        return False
    if _squash(pred) == _squash(gold_s):
        return True
    fast = _plain_number_verdict(pred, gold_s)
    if fast is not None:
        return fast
    if _pathological(pred) or _pathological(gold_s):
        return False
    return ("strict", pred, gold_s)


# --------------------------------------------------------------------------------------------------------
# The authors' rule: in-caller preparation
# --------------------------------------------------------------------------------------------------------


def _authors_job(completion, gold, prompt_ends_in_think: bool) -> bool | tuple:
    """The authors' verdict if it is decided here, else the worker job
    ``("authors", text for Math-Verify or None, text for the oat grader, gold)``."""
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        gold = str(gold)
    if not isinstance(completion, str) or not isinstance(gold, str) or len(completion) > MAX_COMPLETION_CHARS:
        return False
    text, mv_text = completion, completion
    if prompt_ends_in_think:
        text = _PROMPT_THINK_PREFIX + completion
        parts = text.split(_THINK_CLOSE)
        if len(parts) >= 2:  # their script grades parts[1]: the text after the *first* </think>
            text = mv_text = parts[1]
        else:
            mv_text = None  # Math-Verify says wrong; the oat grader still sees the unsplit text
    from tgpo.oat_grader import normalised_forms_equal

    if normalised_forms_equal(text, gold):  # the OR is decided: no Math-Verify needed
        return True
    return ("authors", mv_text, text, gold)


# --------------------------------------------------------------------------------------------------------
# Worker side (runs in the pool's processes; also the in-process fallback)
# --------------------------------------------------------------------------------------------------------


def _mv_parse(text: str, **kwargs):
    from math_verify import parse

    return parse(text, parsing_timeout=None, **kwargs)


_STRICT_CONFIG = None


def _strict_config():
    global _STRICT_CONFIG
    if _STRICT_CONFIG is None:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig

        _STRICT_CONFIG = [LatexExtractionConfig(), ExprExtractionConfig()]
    return _STRICT_CONFIG


def _number_of(expr):
    """A real number from a parsed answer (``x = 5`` -> 5), or ``None``."""
    import sympy

    if isinstance(expr, sympy.Eq):
        expr = expr.rhs
    if isinstance(expr, sympy.Basic) and expr.is_number:
        try:
            value = complex(expr)
        except (TypeError, ValueError):
            return None
        if value.imag == 0 and value.real == value.real:
            return value.real
    return None


@functools.lru_cache(maxsize=4096)
def _parse_gold_strict(gold: str):
    return _mv_parse(f"${gold}$", extraction_config=_strict_config())


@functools.lru_cache(maxsize=4096)
def _parse_gold_authors(gold: str):
    return _mv_parse("$" + gold + "$")


def _strict_verify(pred: str, gold: str) -> bool:
    from tgpo.verify_cache import verify

    gold_parsed = _parse_gold_strict(gold)
    if not gold_parsed:
        return False
    pred_parsed = _mv_parse(f"${pred}$", extraction_config=_strict_config())
    if not pred_parsed:
        return False
    gold_value = _number_of(gold_parsed[0])
    if gold_value is not None and _is_small(gold_value):
        pred_value = _number_of(pred_parsed[0])
        if pred_value is not None:
            return _close_relative(pred_value, gold_value)
    return verify(gold_parsed, pred_parsed)


def _authors_verify(mv_text: str | None, oat_text: str, gold: str) -> bool:
    from tgpo.oat_grader import boxed_reward
    from tgpo.verify_cache import verify

    if mv_text is not None:
        try:
            if verify(_parse_gold_authors(gold), _mv_parse(mv_text)):
                return True
        except Exception:  # noqa: BLE001 - their script counts an exception as wrong, then asks oat
            pass
    return boxed_reward(oat_text, gold)


def prepare_worker() -> None:
    """Import and warm up what verdicts need, in a worker process before it says it is ready (the first
    Math-Verify and oat calls build their parsers)."""
    import math_verify  # noqa: F401
    import pylatexenc.latex2text  # noqa: F401
    import sympy.parsing.sympy_parser  # noqa: F401

    from tgpo.verify_cache import keep_more_latex_parses

    keep_more_latex_parses()
    run_job(("strict", "\\frac{1}{2}", "x+1"))
    run_job(("authors", "so \\boxed{2x}", "so \\boxed{2x}", "x^2"))


def run_job(job: tuple) -> bool:
    """One worker job's verdict (what :mod:`tgpo.verdict_pool` runs in its processes); never raises:
    RecursionError, MemoryError, sympy internals all mean "no"."""
    try:
        if job[0] == "strict":
            return _strict_verify(job[1], job[2])
        return _authors_verify(job[1], job[2], job[3])
    except BaseException:  # noqa: BLE001
        return False


# --------------------------------------------------------------------------------------------------------
# Public verdicts
# --------------------------------------------------------------------------------------------------------


def _math_job(completion, gold, protocol: str, prompt_ends_in_think: bool) -> bool | tuple:
    try:
        if protocol == "strict":
            return _strict_job(completion, gold, prompt_ends_in_think)
        return _authors_job(completion, gold, prompt_ends_in_think)
    except Exception:  # noqa: BLE001 - a verdict never raises
        return False


def _choice_job(completion, gold, protocol: str, prompt_ends_in_think: bool) -> bool | tuple:
    letter = _normalise_letter(gold)
    if letter is None or not isinstance(completion, str):
        return False
    if protocol == "authors":  # their script grades letters with the math pipeline
        return _authors_job(completion, letter, prompt_ends_in_think)
    try:
        return extract_choice(_with_prompt_think(completion, prompt_ends_in_think)) == letter
    except Exception:  # noqa: BLE001 - a verdict never raises
        return False


def math_correct(
    completion: str,
    gold: str,
    *,
    protocol: str = "strict",
    prompt_ends_in_think: bool = False,
    timeout: float = VERDICT_TIMEOUT_S,
) -> bool:
    """Whether ``completion`` answers ``gold`` under ``protocol`` (``"strict"`` or ``"authors"``).

    ``prompt_ends_in_think``: the prompt itself ended in ``<think>\\n`` (the model's chat template opens the
    think block). Never raises; returns within ``timeout`` seconds of compute, from any thread.
    """
    _check_protocol(protocol)
    return verdict_pool.run([[_math_job(completion, gold, protocol, prompt_ends_in_think)]], timeout)[0][0]


def choice_correct(
    completion: str,
    gold: str,
    *,
    protocol: str = "strict",
    prompt_ends_in_think: bool = False,
    timeout: float = VERDICT_TIMEOUT_S,
) -> bool:
    """Whether ``completion`` picks the letter ``gold`` (``A``–``J``) under ``protocol``. Never raises."""
    _check_protocol(protocol)
    return verdict_pool.run([[_choice_job(completion, gold, protocol, prompt_ends_in_think)]], timeout)[0][0]


def _per_item(golds, n: int) -> list:
    if isinstance(golds, (list, tuple)):
        if len(golds) != n:
            raise ValueError(f"{n} completions but {len(golds)} golds")
        return list(golds)
    return [golds] * n


def math_correct_batch(
    completions: Sequence[str],
    golds: Sequence[str] | str,
    *,
    protocol: str = "strict",
    prompt_ends_in_think: bool = False,
    timeout: float = VERDICT_TIMEOUT_S,
) -> list[bool]:
    """:func:`math_correct` over many completions (one gold for all, or one each), verdicts in parallel on
    every worker (the k samples of one problem, a reward batch)."""
    _check_protocol(protocol)
    golds = _per_item(golds, len(completions))
    groups = [[_math_job(c, g, protocol, prompt_ends_in_think)] for c, g in zip(completions, golds)]
    return [g[0] for g in verdict_pool.run(groups, timeout)]


def grade_batch(
    completions: Sequence[str],
    golds: Sequence[str] | str,
    *,
    kind: str = "math",
    prompt_ends_in_think: bool = False,
    timeout: float = VERDICT_TIMEOUT_S,
) -> list[Verdicts]:
    """Both grades (strict, authors) of every completion, all verdicts in parallel. ``kind``: ``"math"`` or
    ``"choice"``; ``golds``: one for all, or one each."""
    if kind not in ("math", "choice"):
        raise ValueError(f"kind must be math or choice, not {kind!r}")
    golds = _per_item(golds, len(completions))
    make = _math_job if kind == "math" else _choice_job
    groups = [[make(c, g, p, prompt_ends_in_think) for p in PROTOCOLS] for c, g in zip(completions, golds)]
    return [Verdicts(*verdicts) for verdicts in verdict_pool.run(groups, timeout)]


def authors_reward_v3_batch(
    completions: Sequence[str], golds: Sequence[str] | str, *, timeout: float = VERDICT_TIMEOUT_S
) -> list[bool]:
    """The authors' *training* reward (their ``reward_impl_version=3``, docs/method.md §3), as verdicts.

    ``<think>\n`` is prefixed to the response; without a ``</think>`` after it the verdict is wrong; otherwise
    Math-Verify parses the text after the first ``</think>`` with its default extraction (no ``\\boxed{}``
    needed) against ``$gold$``. Unlike the authors' evaluation rule there is no oat grader beside it.
    """
    golds = _per_item(golds, len(completions))
    groups = []
    for completion, gold in zip(completions, golds):
        job: bool | tuple = False
        if isinstance(completion, str) and len(completion) <= MAX_COMPLETION_CHARS:
            parts = (_PROMPT_THINK_PREFIX + completion).split(_THINK_CLOSE)
            if len(parts) >= 2:
                job = ("authors", parts[1], "", str(gold))  # an empty oat text: the oat half always says no
        groups.append([job])
    return [g[0] for g in verdict_pool.run(groups, timeout)]
