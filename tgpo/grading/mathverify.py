"""Math-Verify as the grader uses it, in the worker processes of :mod:`tgpo.grading.pool` (docs/method.md §4).

Parses and comparisons run with Math-Verify's own timeouts off (they use ``signal.alarm``, main thread only): the
pool bounds every verdict by killing its worker. Gold parses are memoised per worker, and Math-Verify's LaTeX
parse cache is enlarged (:func:`keep_more_latex_parses`): the samples of one problem share their gold, and a LaTeX
parse costs ~10-30 ms (ANTLR in Python).
"""

from __future__ import annotations

import functools

from tgpo.grading.text import _close_relative, _is_small

__all__ = ["authors_math_verify", "keep_more_latex_parses", "strict_math_verify", "verify"]


def parse(text: str, **kwargs) -> list:
    """``math_verify.parse`` with its timeout off."""
    from math_verify import parse as mv_parse

    return mv_parse(text, parsing_timeout=None, **kwargs)


def verify(gold: list, target: list) -> bool:
    """``math_verify.verify(gold, target)`` with its defaults and its timeout off."""
    from math_verify import verify as mv_verify

    return bool(mv_verify(gold, target, timeout_seconds=None))


def keep_more_latex_parses(maxsize: int = 4096) -> None:
    """Math-Verify keeps only its last 20 LaTeX parses; keep ``maxsize`` (the same function, a larger cache)."""
    try:
        import math_verify.parser as mvp

        mvp.parse_latex_cached = functools.lru_cache(maxsize=maxsize)(mvp.parse_latex_cached.__wrapped__)
    except Exception:  # noqa: BLE001 - another Math-Verify layout: only slower
        pass


@functools.lru_cache(maxsize=1)
def _strict_config() -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(), ExprExtractionConfig()]


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
def _parse_gold_strict(gold: str) -> list:
    return parse(f"${gold}$", extraction_config=_strict_config())


@functools.lru_cache(maxsize=4096)
def _parse_gold_authors(gold: str) -> list:
    return parse("$" + gold + "$")


def strict_math_verify(pred: str, gold: str) -> bool:
    """The strict grade's comparison of a boxed answer with a gold (both cleaned, ``$``-wrapped, LaTeX and
    expression extraction); golds below ``SMALL_GOLD`` in magnitude are compared relatively."""
    gold_parsed = _parse_gold_strict(gold)
    if not gold_parsed:
        return False
    pred_parsed = parse(f"${pred}$", extraction_config=_strict_config())
    if not pred_parsed:
        return False
    gold_value = _number_of(gold_parsed[0])
    if gold_value is not None and _is_small(gold_value):
        pred_value = _number_of(pred_parsed[0])
        if pred_value is not None:
            return _close_relative(pred_value, gold_value)
    return verify(gold_parsed, pred_parsed)


def authors_math_verify(response: str, gold: str) -> bool:
    """The authors' Math-Verify call: ``verify(parse("$" + gold + "$"), parse(response))`` with ``parse``'s
    default extraction; an exception is wrong (their script catches it)."""
    try:
        return verify(_parse_gold_authors(gold), parse(response))
    except Exception:  # noqa: BLE001
        return False
