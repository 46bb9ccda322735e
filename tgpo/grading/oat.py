"""An oat-compatible boxed grader: the second half of the authors' "any true" rule (docs/method.md §4).

The authors OR Math-Verify with oat-llm's ``boxed_reward_fn(response, gold, fast=False)``. oat-llm itself
cannot be a dependency (every release with a grader requires Python < 3.11 and pins vLLM, DeepSpeed and
flash-attn), so this module re-implements that grader's *behaviour*, written independently:

1. The answer is the content of the last ``\\boxed{...}`` (no box: wrong). Braces are counted without
   regard to escapes, and ``\\boxed {x}`` / ``\\boxed x`` do not count.
2. Right if any of three checks accepts it:
   - **Hendrycks normalisation** (MATH's ``_strip_string`` plus MathQA unit words) of both sides is equal;
   - **PRM800K normalisation** (units, ``\\text``, LaTeX to text, commas, integers) is equal, or, element
     by element for tuples/intervals, sympy proves the difference zero (unreduced fractions must match
     exactly, and an integer gold only matches an integer answer);
   - **Math-Verify** on the two normalised forms (``$``-wrapped, boxed priority 0, no fallback), unless one
     side is longer than 128 characters and highly repetitive; as math-verify 0.6.0 (the authors' pin) parses
     and compares (:mod:`tgpo.grading.mv_compat`).

Agreement with oat-llm 0.2.4 is measured by ``python -m bench.grader`` on generated pairs. Differences by
design: oat's internal one-second timeouts are replaced by the caller's verdict budget (:mod:`tgpo.grading`
runs this in killable worker processes), and anything that raises counts as wrong (oat would crash).

Run it only where a runaway sympy call can be killed: :func:`oat_boxed_correct` evaluates text with sympy's
parser, as oat does.
"""

from __future__ import annotations

import functools
import re

from tgpo.grading import mathverify

__all__ = ["last_boxed_content", "normalised_forms_equal", "oat_boxed_correct"]

_BOXED = "\\boxed"


# --------------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------------


def last_boxed_content(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``; ``None`` if there is none, it never closes, or it is not
    written exactly ``\\boxed{``."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                group = text[start : i + 1]
                return group[len(_BOXED) + 1 : -1] if group.startswith(_BOXED + "{") else None
    return None


# --------------------------------------------------------------------------------------------------------
# Hendrycks (MATH) normalisation, with MathQA's unit words
# --------------------------------------------------------------------------------------------------------

# MathQA unit words, in oat's order (data, not code: the order changes which substitution wins). Each is
# removed where it stands alone (bounded by non-word characters); "." in an entry is a regex wildcard.
_UNIT_WORDS = (
    "east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile", "q .", "monkey",
    "prime", "ratio", "profit of rs", "rd", "o", "gm", "p . m", "lb", "tile", "per", "dm", "lt", "gain", "ab",
    "way", "west", "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t", "a", "h", "no change", "men",
    "soldier", "pie", "bc", "excess", "st", "inches", "noon", "percent", "by", "gal", "kmh", "c", "acre",
    "rise", "a . m", "th", "π r 2", "sq", "mark", "l", "toy", "coin", "sq . m", "gallon", "° f", "profit",
    "minw", "yr", "women", "feet", "am", "pm", "hr", "cu cm", "square", "v â € ™", "are", "rupee", "rounds",
    "cubic", "cc", "mtr", "s", "ohm", "number", "kmph", "day", "hour", "minute", "min", "second", "man",
    "woman", "sec", "cube", "mt", "sq inch", "mp", "∏ cm ³", "hectare", "more", "sec", "unit", "cu . m",
    "cm 2", "rs .", "rs", "kg", "g", "month", "km", "m", "cm", "mm", "apple", "liter", "loss", "yard", "pure",
    "year", "increase", "decrease", "d", "less", "Surface", "litre", "pi sq m", "s .", "metre", "meter",
    "inch",
)
_UNIT_WORDS = _UNIT_WORDS + tuple(w + "s" for w in _UNIT_WORDS)
# (pattern, literal or None): a literal word absent from the text cannot match, so the regex is skipped
_UNIT_PATTERNS = tuple(
    (re.compile(r"(^|\W)" + w + r"($|\W)"), None if "." in w else w) for w in _UNIT_WORDS
)

_TEXT_WRAPPED = re.compile(r"^\\text\{(?P<text>.+?)\}$")
_ARRAY_BEGIN = re.compile(r"\\begin\{array\}\{.*?\}")
_ARRAY_END = re.compile(r"\\end\{array\}")
_TRAILING_TEXT = re.compile(r"\\text\{.*?\}$")


class _Malformed(Exception):
    """A normalisation step met input it cannot handle: the caller keeps the text as it was."""


def _remove_unit_words(s: str) -> str:
    for _ in range(2):
        for pattern, literal in _UNIT_PATTERNS:
            if literal is not None and literal not in s:
                continue
            out = pattern.sub(r"\1\2", s)
            if out:
                s = out
    return s


def _brace_sqrt_arguments(s: str) -> str:
    """``\\sqrt3`` -> ``\\sqrt{3}`` (one character)."""
    head, *rest = s.split("\\sqrt")
    out = [head]
    for piece in rest:
        if not piece:
            raise _Malformed("\\sqrt without argument")
        out.append("\\sqrt" + (piece if piece[0] == "{" else "{" + piece[0] + "}" + piece[1:]))
    return "".join(out)


def _brace_frac_arguments(s: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{72}`` -> ``\\frac{1}{72}``; unchanged if one is too short."""
    head, *rest = s.split("\\frac")
    out = [head]
    for piece in rest:
        if not piece:
            raise _Malformed("\\frac without arguments")
        if piece[0] == "{":
            out.append("\\frac" + piece)
        elif len(piece) < 2:
            return s
        elif piece[1] == "{":
            out.append("\\frac{" + piece[0] + "}" + piece[1:])
        else:
            out.append("\\frac{" + piece[0] + "}{" + piece[1] + "}" + piece[2:])
    return "".join(out)


def _slash_to_frac(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        num, den = int(parts[0]), int(parts[1])
    except ValueError:
        return s
    return f"\\frac{{{num}}}{{{den}}}" if s == f"{num}/{den}" else s


def _hendrycks_strip(s: str) -> str:
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = _ARRAY_END.sub(r"\\end{pmatrix}", _ARRAY_BEGIN.sub(r"\\begin{pmatrix}", s)).replace("bmatrix", "pmatrix")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    s = s.replace("\\left", "").replace("\\right", "")
    without_unit = _TRAILING_TEXT.sub("", s).strip()
    if without_unit and without_unit != s:
        s = without_unit
    s = _remove_unit_words(s)
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    if "\\text{ " in s:  # a unit written "\text{ cm}"
        parts = s.split("\\text{ ")
        if len(parts) != 2:
            raise _Malformed("several \\text{ units")
        s = parts[0]
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "x = 5" -> "5"
        s = sides[1]
    if "\\sqrt" in s:
        s = _brace_sqrt_arguments(s)
    s = _brace_frac_arguments(s.replace(" ", ""))
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _slash_to_frac(s)


@functools.lru_cache(maxsize=4096)
def _hendrycks_normal(answer: str) -> str:
    answer = answer.strip()
    m = _TEXT_WRAPPED.search(answer)
    if m is not None:
        answer = m.group("text").strip()
    try:
        return _hendrycks_strip(answer)
    except Exception:  # noqa: BLE001 - the grader keeps the text as it was, like oat
        return answer


# --------------------------------------------------------------------------------------------------------
# PRM800K normalisation and the sympy check
# --------------------------------------------------------------------------------------------------------

_PRM_UNITS = tuple(
    re.compile(u + r"(es)?(s)? *(\^[0-9]+)?")
    for u in ("degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week",
              "month", "year", "foot", "feet", "inch", "yard")
)
_DEGREE_MARK = re.compile(r"\^ *\\circ")
_THIN_SPACE_COMMA = re.compile(r",\\! *")
_MINUS_SPACE = re.compile(r"- *")
_MIXED_NUMBER = re.compile(r"([0-9]) +([0-9])")
_THOUSANDS_COMMA = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
_SIMPLE_FRACTION = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")
_POWER_CHAINS = (re.compile(r"\^[0-9]+\^"), re.compile(r"\^[0-9][0-9]+"))
_BRACKETS = "()[]"


def _drop_thousands_commas(s: str) -> str:
    while True:
        out = _THOUSANDS_COMMA.sub(r"\1\3\4", s)
        if out == s:
            return out
        s = out


def _is_integral(x: float) -> bool:
    try:
        return abs(x - int(round(x))) <= 1e-7
    except (OverflowError, ValueError):
        return False


def _float_or_none(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _looks_integer(s: str) -> bool:
    value = _float_or_none(_drop_thousands_commas(s))
    return value is not None and _is_integral(value)


@functools.lru_cache(maxsize=1)
def _latex_to_text():
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text().latex_to_text


_UNICODE_TO_ASCII = (("√", "sqrt"), ("π", "pi"), ("∞", "inf"), ("∪", "U"), ("·", "*"), ("×", "*"))


def _latex_as_text(s: str) -> str:
    s = s.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac").replace("\\frac", " \\frac")
    s = _latex_to_text()(s)
    for symbol, ascii_ in _UNICODE_TO_ASCII:
        s = s.replace(symbol, ascii_)
    return s.strip()


@functools.lru_cache(maxsize=4096)
def _prm_normal(expr: str) -> str:
    m = _TEXT_WRAPPED.search(expr)
    if m is not None:
        expr = m.group("text")
    expr = expr.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    expr = expr.replace(" or ", " , ").replace(" and ", " , ")
    expr = expr.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    for unit in _PRM_UNITS:
        expr = unit.sub("", expr)
    expr = _DEGREE_MARK.sub("", expr)
    if expr[:1] == "{" and expr[-1:] == "}":
        expr = expr[1:-1]
    expr = _THIN_SPACE_COMMA.sub("", expr)
    value = _float_or_none(expr)
    if value is not None and _is_integral(value):
        expr = str(int(round(value)))
    if "\\" in expr:
        try:
            expr = _latex_as_text(expr)
        except Exception:  # noqa: BLE001 - keep the LaTeX as it was
            pass
    expr = _MINUS_SPACE.sub("-", expr)
    expr = _MIXED_NUMBER.sub(r"\1+\2", expr)
    expr = expr.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _looks_integer(expr):
        expr = str(int(float(expr.replace(",", ""))))
    return expr


def _tuple_elements(expr: str) -> list[str]:
    expr = _drop_thousands_commas(expr)
    if not expr:
        return []
    if len(expr) > 2 and expr[0] in _BRACKETS and expr[-1] in _BRACKETS and not any(
        c in _BRACKETS for c in expr[1:-1]
    ):
        return [e.strip() for e in expr[1:-1].split(",")]
    return [expr]


def _safe_for_sympy(expr: str) -> bool:
    """oat's guard against sympy hangs: at most two distinct letters, no braced or long exponents."""
    letters = {c for c in expr.replace("sqrt", "").replace("frac", "") if c.isalpha()}
    if len(letters) > 2 or "^{" in expr or "^(" in expr:
        return False
    return not any(p.search(expr) for p in _POWER_CHAINS)


def _sympy_says_equal(gold: str, answer: str) -> bool:
    difference = f"({gold})-({answer})"
    if not _safe_for_sympy(difference):
        return False
    try:
        import sympy
        from sympy.parsing import sympy_parser

        transformations = sympy_parser.standard_transformations + (sympy_parser.implicit_multiplication_application,)
        parsed = sympy_parser.parse_expr(difference.replace("^", "**"), transformations=transformations)
        return sympy.simplify(parsed) == 0
    except Exception:  # noqa: BLE001 - unparseable means "not shown equal"
        return False


def _prm_equal(answer_norm: str, gold_norm: str) -> bool:
    """PRM800K's ``grade_answer_sympy`` on normalised forms."""
    if gold_norm == answer_norm:
        return True
    if not answer_norm:
        return False
    gold_parts, answer_parts = _tuple_elements(gold_norm), _tuple_elements(answer_norm)
    if len(gold_parts) > 1 and (gold_norm[0] != answer_norm[0] or gold_norm[-1] != answer_norm[-1]):
        return False
    if len(gold_parts) != len(answer_parts):
        return False
    for g, a in zip(gold_parts, answer_parts):
        if _SIMPLE_FRACTION.search(g) and _SIMPLE_FRACTION.search(a):
            ok = g == a  # an unreduced fraction is not the answer
        elif _looks_integer(g) != _looks_integer(a):
            ok = False
        else:
            ok = _sympy_says_equal(g, a)
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------------------------------------
# Math-Verify on the normalised forms
# --------------------------------------------------------------------------------------------------------


def _repetitive(s: str) -> bool:
    """oat's degenerate-output test: the mean longest common prefix of adjacent sorted suffixes, as a share
    of all suffix pairs, above 0.2."""
    n = len(s)
    if n <= 1:
        return False
    rank = [ord(c) for c in s]
    order = list(range(n))
    k = 1
    while True:  # prefix doubling
        key = [(rank[i], rank[i + k] if i + k < n else -1) for i in range(n)]
        order.sort(key=key.__getitem__)
        new_rank = [0] * n
        for j in range(1, n):
            new_rank[order[j]] = new_rank[order[j - 1]] + (key[order[j]] != key[order[j - 1]])
        rank = new_rank
        if rank[order[-1]] == n - 1 or k >= n:
            break
        k <<= 1
    total, h = 0, 0  # Kasai's LCP
    for i in range(n):
        if rank[i] == n - 1:
            h = 0
            continue
        j = order[rank[i] + 1]
        while i + h < n and j + h < n and s[i + h] == s[j + h]:
            h += 1
        total += h
        if h:
            h -= 1
    return total * 2 / (n * (n + 1)) > 0.2


@functools.lru_cache(maxsize=1)
def _mv_config():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())


def _mv_parse(text: str):
    # oat passes extraction_mode=["first_match"], which Math-Verify reads as its default, "any_match"
    return mathverify.authors_parse(text if "$" in text else f"${text}$", extraction_config=_mv_config(),
                                    fallback_mode="no_fallback")


@functools.lru_cache(maxsize=4096)
def _mv_parse_gold(gold: str):
    return _mv_parse(gold)


def _latex_equal(answer: str, gold: str, answer_norm: str, gold_norm: str) -> bool:
    if (len(answer) > 128 and _repetitive(answer)) or (len(gold) > 128 and _repetitive(gold)):
        return False
    if answer_norm == gold_norm:
        return True
    try:
        return mathverify.authors_verify(_mv_parse_gold(gold), _mv_parse(answer))
    except Exception:  # noqa: BLE001
        return False


# --------------------------------------------------------------------------------------------------------
# The grader
# --------------------------------------------------------------------------------------------------------


#: Longest answer :func:`normalised_forms_equal` looks at (its regexes are cheap, but run in the caller).
QUICK_CHECK_MAX_CHARS = 1000


def normalised_forms_equal(response: str, gold: str) -> bool:
    """oat's first check alone — the Hendrycks-normalised last box equals the normalised gold: string work
    only, no sympy, so it can run in the caller. ``True`` means :func:`oat_boxed_correct` is ``True``."""
    try:
        answer = last_boxed_content(response)
        if answer is None or _BOXED in gold or len(answer) > QUICK_CHECK_MAX_CHARS or len(gold) > QUICK_CHECK_MAX_CHARS:
            return False
        return _hendrycks_normal(answer) == _hendrycks_normal(gold)
    except Exception:  # noqa: BLE001
        return False


def oat_boxed_correct(response: str, gold: str) -> bool:
    """oat's ``boxed_reward_fn(response, gold, fast=False)`` as a boolean. Never raises."""
    try:
        answer = last_boxed_content(response)
        if answer is None:
            return False
        if _BOXED in gold:
            gold = last_boxed_content(gold)
            if gold is None:
                return False
        if _hendrycks_normal(answer) == _hendrycks_normal(gold):
            return True
        answer_norm, gold_norm = _prm_normal(answer), _prm_normal(gold)
        return _prm_equal(answer_norm, gold_norm) or _latex_equal(answer, gold, answer_norm, gold_norm)
    except Exception:  # noqa: BLE001 - a verdict never raises
        return False
