"""Pure text and number helpers of the grader: think blocks, boxed answers, choice letters, and the strict
grade's in-caller normalisation and exact fast paths (docs/method.md §4). No Math-Verify, no sympy: everything
here runs in the caller, in microseconds, and never raises on a string."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

__all__ = [
    "CHOICE_LETTERS",
    "MAX_ANSWER_CHARS",
    "MAX_COMPLETION_CHARS",
    "SMALL_GOLD",
    "SMALL_GOLD_REL_TOL",
    "extract_choice",
    "extract_last_boxed",
    "strip_think",
]

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

