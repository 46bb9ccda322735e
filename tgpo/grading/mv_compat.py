"""math-verify 0.6.0's behaviour on the installed math-verify 0.9, for the authors' grade (docs/method.md §4).

The authors pinned math-verify 0.6.0 (with latex2sympy2_extended 1.0.9) for their reward and their evaluation; the
suite installs 0.9 (with latex2sympy2_extended 1.11). The two differ where 0.9 became more lenient, and the
authors' grade (the ``authors`` protocol and the ``authors_v3`` reward) must keep 0.6.0's verdicts. Math-Verify's
configuration cannot express these differences, so :func:`parse` and :func:`verify` run 0.9 with the few pieces
that changed swapped back to their 0.6.0 behaviour, only while they run (a context variable: the strict grade in
the same process keeps 0.9 as it is, thread by thread). Emulated differences:

1. **Several boxes.** 0.6.0 grades the last ``\\boxed{}``, joined with the boxes just before it only when nothing
   but "and", "or" or "," separates them; 0.9 also joins boxes under 10 characters apart, or with a separator
   among up to 70 characters between them, and drops repeats. ``first \\boxed{3} then \\boxed{5}`` is 5 for
   0.6.0 and {3, 5} for 0.9 (wrong for gold 5). (:func:`last_boxed_060`, in place of latex2sympy2_extended's
   ``extract_boxed_content``.)
2. **Percentages.** 0.9 reads ``10\\%`` as 10 times an unevaluated 1/100 and accepts it for a gold 10 (and
   ``25`` for a gold ``25\\%``); 0.6.0 reads it as the number 1/10, which is not 10.
3. **Letter case.** 0.9 lowercases LaTeX symbols (``K`` equals ``k``) and compares multi-letter names without
   case (``\text{evelyn}`` equals ``\text{Evelyn}``); 0.6.0 keeps the case.
4. **A leading ``0,``.** 0.9 reads a whole answer ``0,720`` as the decimal 0.720; 0.6.0 reads the comma as a
   thousands separator (720), so ``\boxed{0}, \boxed{720}`` (joined to ``0,720``) is right for a gold 720.

``python -m bench.mathverify_compat`` measures agreement with the real 0.6.0 (installed in a separate
interpreter) on generated cases and lists every disagreement (``results/bench/mathverify_compat.md``).
"""

from __future__ import annotations

import contextvars
import functools
import re
import threading

__all__ = ["last_boxed_060", "parse", "verify"]

_AUTHORS = contextvars.ContextVar("tgpo_math_verify_060", default=False)
_INSTALL_LOCK = threading.Lock()
_installed = False
#: LaTeX parses kept per process (Math-Verify keeps its last 20): the samples of one problem share their gold.
LATEX_PARSES_KEPT = 4096


# --------------------------------------------------------------------------------------------------------
# 1. Several boxes
# --------------------------------------------------------------------------------------------------------

_SEPARATOR_060 = re.compile(r"^\s*(?:and|or|,)\s*$")


def _closing_brace(text: str, open_idx: int, end: int) -> int | None:
    depth = 0
    for i in range(open_idx, end):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def last_boxed_060(text: str) -> str:
    """latex2sympy2_extended 1.0.9's ``extract_boxed_content(text, mode="last")``: the content of the last
    ``\\boxed{}`` or ``\\fbox{}``, joined with ``,`` to the boxes before it that only "and", "or" or "," separate
    from it; an unclosed last box gives the rest of the text from its brace; no box gives ``text``."""
    results: list[str] = []
    end = len(text)  # boxes are searched right to left, each before the previous one
    later_start = None
    while True:
        start = max(text.rfind("\\boxed", 0, end), text.rfind("\\fbox", 0, end))
        if start < 0:
            break
        brace = start + (6 if text.startswith("\\boxed", start) else 5)
        while brace < end and text[brace].isspace():
            brace += 1
        if brace >= end:
            break
        if text[brace] != "{":
            if not results:
                results.append(text[brace:])
            break
        close = _closing_brace(text, brace, end)
        if close is None:
            if not results:
                results.append(text[brace:])
            break
        if later_start is not None and not _SEPARATOR_060.match(text[close + 1 : later_start]):
            break
        results.append(text[brace + 1 : close].strip())
        later_start = end = start
    return ",".join(reversed(results)) if results else text


# --------------------------------------------------------------------------------------------------------
# 2 and 3. Percentages and letter case, in the LaTeX parse
# --------------------------------------------------------------------------------------------------------


def _plain_percent(expr):
    """0.6.0's percentage: ``x * 1/100`` (unevaluated) in place of 0.9's ``x * UnevaluatedExpr(1/100)``, at the
    top and in the elements of a set, tuple or equation."""
    import sympy

    hundredth = sympy.UnevaluatedExpr(sympy.Rational(1, 100))
    if isinstance(expr, sympy.Mul) and len(expr.args) == 2 and expr.args[1] == hundredth:
        return sympy.Mul(expr.args[0], sympy.Rational(1, 100), evaluate=False)
    if isinstance(expr, (sympy.FiniteSet, sympy.Tuple)) or type(expr).__name__ == "FiniteSet":
        return type(expr)(*(_plain_percent(a) for a in expr.args))
    if isinstance(expr, sympy.Eq):
        return sympy.Eq(expr.lhs, _plain_percent(expr.rhs), evaluate=False)
    return expr


_LEADING_ZERO_NUMBER = re.compile(r"^\s*0((?:,\d{3})+)(\.\d+)?\s*$")


def _thousands_after_zero(latex: str) -> str:
    """A whole answer ``0,720`` as 0.6.0's latex2sympy2_extended read it: a thousands separator, dropped
    (``0720``). Anywhere else (``(0,720)``, ``0,720^\\circ``, ``x=0,720``) both versions read the comma alike."""
    m = _LEADING_ZERO_NUMBER.match(latex)
    return "0" + m.group(1).replace(",", "") + (m.group(2) or "") if m else latex


def _compare_symbols_060(gold, pred) -> bool:
    """math-verify 0.6.0 on a symbol: e and E, a product of letters against one multi-letter symbol without case,
    and otherwise equality of the expressions or of their text, case kept (0.6.0 compares the text of any two
    answers first, so ``\text{0}`` equals 0; 0.9 does it only here, after lowercasing)."""
    from sympy import E, Mul, Symbol

    if (isinstance(gold, Symbol) and gold.name.lower() == "e" and pred == E) or (
        isinstance(pred, Symbol) and pred.name.lower() == "e" and gold == E
    ):
        return True
    for one, product in ((gold, pred), (pred, gold)):
        if isinstance(one, Symbol) and isinstance(product, Mul) and all(
            a == E or isinstance(a, Symbol) for a in product.args
        ):
            return one.name.lower() == "".join(a.name if isinstance(a, Symbol) else "e" for a in product.args).lower()
    return gold == pred or str(gold).strip() == str(pred).strip()


def _convert_to_pct_060(number):
    import sympy

    return sympy.Mul(number, sympy.Rational(1, 100), evaluate=False)


@functools.lru_cache(maxsize=LATEX_PARSES_KEPT)
def _parse_latex_060(latex: str):
    """0.9's ``parse_latex_cached`` (the whole text, else its last equation) with symbols in their own case and
    percentages as plain factors."""
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig, latex2sympy
    from math_verify.grader import should_treat_as_complex
    from math_verify.parser import get_last_eq

    def convert(text):
        return _plain_percent(latex2sympy(text, is_real=not should_treat_as_complex(text), convert_degrees=False,
                                          normalization_config=None,
                                          conversion_config=ConversionConfig(lowercase_symbols=False)))

    latex = _thousands_after_zero(latex)
    try:
        return convert(latex)
    except Exception:
        last_eq = get_last_eq(latex)
        if last_eq == latex:
            raise
        return convert(last_eq)


# --------------------------------------------------------------------------------------------------------
# Switching between 0.9 and 0.6.0 behaviour
# --------------------------------------------------------------------------------------------------------


def install() -> None:
    """Put the switches into math-verify's and latex2sympy2_extended's modules (once per process): each piece
    behaves as 0.6.0 while :func:`parse` or :func:`verify` runs, and as the installed version otherwise. Also
    keeps :data:`LATEX_PARSES_KEPT` LaTeX parses of each kind instead of Math-Verify's 20."""
    global _installed
    with _INSTALL_LOCK:
        if _installed:
            return
        import latex2sympy2_extended.math_normalization as norm
        import math_verify.grader as mvg
        import math_verify.parser as mvp

        boxed_09 = norm.extract_boxed_content
        parse_latex_09 = functools.lru_cache(maxsize=LATEX_PARSES_KEPT)(
            getattr(mvp.parse_latex_cached, "__wrapped__", mvp.parse_latex_cached))
        pct_09 = mvp.convert_to_pct
        symbols_09 = mvg.sympy_compare_symbols

        def extract_boxed_content(text, mode="last"):
            return last_boxed_060(text) if mode == "last" and _AUTHORS.get() else boxed_09(text, mode)

        def parse_latex_cached(latex):
            return _parse_latex_060(latex) if _AUTHORS.get() else parse_latex_09(latex)

        def convert_to_pct(number):
            return _convert_to_pct_060(number) if _AUTHORS.get() else pct_09(number)

        def sympy_compare_symbols(gold, pred):
            return _compare_symbols_060(gold, pred) if _AUTHORS.get() else symbols_09(gold, pred)

        norm.extract_boxed_content = extract_boxed_content
        mvg.sympy_compare_symbols = sympy_compare_symbols
        mvp.parse_latex_cached = parse_latex_cached
        mvp.convert_to_pct = convert_to_pct
        _installed = True


def _as_060(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        install()
        token = _AUTHORS.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _AUTHORS.reset(token)

    return run


@_as_060
def parse(text: str, **kwargs) -> list:
    """``math_verify.parse`` as 0.6.0 extracts, with its timeout off."""
    from math_verify import parse as mv_parse

    return mv_parse(text, parsing_timeout=None, **kwargs)


@_as_060
def verify(gold: list, target: list) -> bool:
    """``math_verify.verify`` (defaults) on answers :func:`parse` gave, with its timeout off."""
    from math_verify import verify as mv_verify

    return bool(mv_verify(gold, target, timeout_seconds=None))
