"""Math-Verify as the grader uses it, in the worker processes of :mod:`tgpo.grading.pool` (docs/method.md §4).

- The **strict grade** uses the installed library as it is (math-verify 0.9; :func:`grader_versions` says which).
- The **authors' grade** (their evaluation rule and the ``authors_v3`` reward) reproduces math-verify 0.6.0, the
  version the authors pinned: :func:`authors_parse` and :func:`authors_verify` go through the compatibility layer
  :mod:`tgpo.grading.mv_compat`.

Parses and comparisons run with Math-Verify's own timeouts off (they use ``signal.alarm``, main thread only): the
pool bounds every verdict by killing its worker. Gold parses are memoised per worker, and Math-Verify's LaTeX
parse cache is enlarged (:func:`keep_more_latex_parses`): the samples of one problem share their gold, and a LaTeX
parse costs ~10-30 ms (ANTLR in Python).
"""

from __future__ import annotations

import functools

from tgpo.grading import mv_compat
from tgpo.grading.text import _close_relative, _is_small

__all__ = [
    "AUTHORS_MATH_VERIFY",
    "authors_math_verify",
    "authors_parse",
    "authors_verify",
    "grader_versions",
    "keep_more_latex_parses",
    "strict_math_verify",
    "verify",
]

#: The math-verify release whose behaviour the authors' grade reproduces (their pin).
AUTHORS_MATH_VERIFY = "0.6.0"
_VERSIONED = ("math-verify", "latex2sympy2_extended", "sympy")


def grader_versions() -> dict[str, str]:
    """The libraries each grade runs with, for a manifest: the installed ``math-verify``,
    ``latex2sympy2_extended`` and ``sympy`` (the strict grade uses them as they are), and
    ``authors_math_verify``, the release the authors' grade reproduces through :mod:`tgpo.grading.mv_compat`."""
    import importlib.metadata as md

    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    versions["authors_math_verify"] = AUTHORS_MATH_VERIFY
    return versions


def parse(text: str, **kwargs) -> list:
    """``math_verify.parse`` with its timeout off."""
    from math_verify import parse as mv_parse

    return mv_parse(text, parsing_timeout=None, **kwargs)


def verify(gold: list, target: list) -> bool:
    """``math_verify.verify(gold, target)`` with its defaults and its timeout off."""
    from math_verify import verify as mv_verify

    return bool(mv_verify(gold, target, timeout_seconds=None))


def keep_more_latex_parses() -> None:
    """Math-Verify keeps only its last 20 LaTeX parses; keep :data:`mv_compat.LATEX_PARSES_KEPT` (installed with
    the compatibility layer's switches)."""
    mv_compat.install()


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


def authors_parse(text: str, **kwargs) -> list:
    """``parse`` as math-verify 0.6.0 extracts (the authors' version), timeout off."""
    return mv_compat.parse(text, **kwargs)


def authors_verify(gold: list, target: list) -> bool:
    """``verify`` as math-verify 0.6.0 compares (the authors' version), timeout off."""
    return mv_compat.verify(gold, target)


@functools.lru_cache(maxsize=4096)
def _parse_gold_authors(gold: str) -> list:
    return authors_parse("$" + gold + "$")


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
        return authors_verify(_parse_gold_authors(gold), authors_parse(response))
    except Exception:  # noqa: BLE001
        return False
