"""Math-Verify's ``verify``, memoised, and a larger LaTeX parse cache: for the grader's worker processes.

One completion's two grades compare the same gold and answer up to three times (strict, the authors'
Math-Verify, the oat grader's Math-Verify), and the samples of one problem repeat answers. A LaTeX parse costs
~10-30 ms (ANTLR in Python) and a symbolic comparison as much again, so each is done once per worker. Timeouts
are off here: the worker is killed when a verdict overruns its budget.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

_MAX_VERDICTS = 16384
_verdicts: OrderedDict[tuple, bool] = OrderedDict()


def verify(gold: list, target: list) -> bool:
    """``math_verify.verify(gold, target)`` with its defaults and no timeout, memoised on the parsed values."""
    from math_verify import verify as mv_verify

    try:
        key = (tuple(gold), tuple(target))
        hash(key)
    except TypeError:  # a mutable matrix: compare without the cache
        return bool(mv_verify(gold, target, timeout_seconds=None))
    hit = _verdicts.get(key)
    if hit is None:
        hit = bool(mv_verify(gold, target, timeout_seconds=None))
        _verdicts[key] = hit
        if len(_verdicts) > _MAX_VERDICTS:
            _verdicts.popitem(last=False)
    return hit


def keep_more_latex_parses(maxsize: int = 4096) -> None:
    """Math-Verify keeps only its last 20 LaTeX parses; keep ``maxsize`` (the same function, a larger cache)."""
    try:
        import math_verify.parser as mvp

        mvp.parse_latex_cached = functools.lru_cache(maxsize=maxsize)(mvp.parse_latex_cached.__wrapped__)
    except Exception:  # noqa: BLE001 - another Math-Verify layout: only slower
        pass
