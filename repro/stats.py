"""Confidence intervals for lab tables: pure functions of scores, no I/O.

Two ways to put a 95% interval on a cell or on a paired difference between methods:

* :func:`t_interval` / :func:`paired_t_interval` — Student's t over seeds (the independent training runs). Exact
  when the per-seed values (or per-seed differences) are normal; valid with the few seeds the lab affords, where the
  interval is wide because it must be. Problems are fixed: the interval is about these eval problems.
* :func:`paired_bootstrap` — a two-level bootstrap: resample seeds, then problems within each split, with the same
  draws for every row (paired across methods). It covers problem sampling too, but with few seeds it is too narrow:
  a bootstrap of n values sees their spread shrunk by (n - 1)/n and uses normal-like tails instead of t's.

:func:`problem_interval` is the interval of a single deterministic run (the untrained student under greedy
decoding), whose only noise is which problems were drawn; :func:`paired_problem_interval` is its paired form for two
single runs (a one-seed table), which says nothing about seed-to-seed variation. :func:`detectable_difference` turns
a standard error into the smallest true difference a paired t-test detects with a given power
(:func:`detectable_difference_over_problems`: the same over problems).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """``mean ± half`` (``half`` is NaN when it cannot be estimated, e.g. from one seed); ``se`` its standard error."""

    mean: float
    half: float
    se: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half

    @property
    def high(self) -> float:
        return self.mean + self.half


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Student's t interval of the mean of independent ``values`` (NaN half-width below two values)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    if n < 2:
        return Interval(float(x.mean()), float("nan"), float("nan"), n)
    se = float(x.std(ddof=1) / np.sqrt(n))
    return Interval(float(x.mean()), float(sps.t.ppf(0.5 + level / 2, n - 1) * se), se, n)


def cluster_ratio_interval(numerators: Sequence[float], denominators: Sequence[float], level: float = LEVEL) -> Interval:
    """Interval of ``sum(numerators) / sum(denominators)`` over independent clusters (e.g. a prompt's rollouts, which
    share the prompt and are not independent of each other): the ratio estimator's cluster-robust (delta-method)
    standard error, with a t quantile on ``n - 1`` clusters. With every denominator 1 it is :func:`t_interval`.
    Clusters with denominator 0 count (they hold no units); NaN half-width below two clusters."""
    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    n, total = len(num), float(den.sum())
    if n == 0 or total == 0:
        return Interval(float("nan"), float("nan"), float("nan"), n)
    ratio = float(num.sum() / total)
    if n < 2:
        return Interval(ratio, float("nan"), float("nan"), n)
    residuals = num - ratio * den
    se = float(np.sqrt(n / (n - 1) * np.sum(residuals**2)) / total)
    return Interval(ratio, float(sps.t.ppf(0.5 + level / 2, n - 1) * se), se, n)


def cluster_ratio_difference(num_a: Sequence[float], den_a: Sequence[float], num_b: Sequence[float],
                              den_b: Sequence[float], level: float = LEVEL) -> Interval:
    """Interval of ``sum(num_a)/sum(den_a) - sum(num_b)/sum(den_b)`` when both ratios come from the same independent
    clusters (e.g. a prompt's long and short rollouts): the delta-method standard error of the difference, clustered,
    with a t quantile on ``n - 1`` clusters (:func:`cluster_ratio_interval`'s estimator for each part)."""
    na, da, nb, db = (np.asarray(x, dtype=float) for x in (num_a, den_a, num_b, den_b))
    n, ta, tb = len(na), float(da.sum()), float(db.sum())
    if n == 0 or ta == 0 or tb == 0:
        return Interval(float("nan"), float("nan"), float("nan"), n)
    ra, rb = float(na.sum() / ta), float(nb.sum() / tb)
    if n < 2:
        return Interval(ra - rb, float("nan"), float("nan"), n)
    residuals = (na - ra * da) / ta - (nb - rb * db) / tb
    se = float(np.sqrt(n / (n - 1) * np.sum(residuals**2)))
    return Interval(ra - rb, float(sps.t.ppf(0.5 + level / 2, n - 1) * se), se, n)


def paired_t_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """t interval of ``mean(a - b)`` for values paired by position (same seed, same data order)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same shape, got {a.shape} and {b.shape}")
    return t_interval(a - b, level)


def problem_interval(splits: Sequence[Sequence[float]], level: float = LEVEL) -> Interval:
    """Normal interval of the unweighted mean over ``splits`` of each split's mean per-problem value.

    For one run evaluated once (no seed noise): each split's mean has variance ``var/n`` over its problems, and the
    splits are independent draws, so ``se = sqrt(sum(var_j / n_j)) / k``.
    """
    arrays = [np.asarray(s, dtype=float) for s in splits]
    if not arrays or any(len(a) < 2 for a in arrays):
        mean = float(np.mean([a.mean() for a in arrays])) if arrays and all(len(a) for a in arrays) else float("nan")
        return Interval(mean, float("nan"), float("nan"), min((len(a) for a in arrays), default=0))
    mean = float(np.mean([a.mean() for a in arrays]))
    se = float(np.sqrt(sum(a.var(ddof=1) / len(a) for a in arrays)) / len(arrays))
    return Interval(mean, float(sps.norm.ppf(0.5 + level / 2) * se), se, int(sum(len(a) for a in arrays)))


def paired_problem_interval(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], level: float = LEVEL) -> Interval:
    """Interval of ``mean(a) - mean(b)`` for two single runs scored on the same problems, paired by problem.

    ``a`` and ``b`` hold one array per split, in the same problem order. The per-problem differences go through
    :func:`problem_interval`: the interval covers which problems were drawn, for these two runs; it cannot see how
    much another training seed would move either of them.
    """
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        raise ValueError("paired problems need the same splits and the same number of problems in each")
    return problem_interval([np.asarray(x, dtype=float) - np.asarray(y, dtype=float) for x, y in zip(a, b)], level)


def paired_bootstrap(
    correct: Mapping[str, np.ndarray],
    reference: int | None,
    n_boot: int = 2000,
    level: float = LEVEL,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Two-level paired bootstrap of each row's mean score and of its difference from a reference row.

    Args:
        correct: split -> array ``[rows, seeds, problems]`` of per-problem values (the same rows and seeds in every
            split; a row evaluated once, such as the untrained student, repeated along the seed axis).
        reference: index of the row differences are taken from (``None``: no differences).
        n_boot: resamples. Each draws seeds with replacement, then problems with replacement within each split;
            every row uses the same draws (paired).
    Returns: ``mean`` ``[rows]`` (the point estimate: mean over splits of the mean over seeds and problems) and
        ``low``/``high`` ``[rows]`` (percentile interval); with a reference also ``diff``, ``diff_low``,
        ``diff_high`` ``[rows]`` (row minus reference; the reference's own difference is 0).
    """
    arrays = [np.asarray(a, dtype=float) for a in correct.values()]
    if not arrays:
        raise ValueError("paired_bootstrap needs at least one split")
    n_rows, n_seeds = arrays[0].shape[:2]
    if any(a.ndim != 3 or a.shape[:2] != (n_rows, n_seeds) for a in arrays):
        raise ValueError("every split needs an array [rows, seeds, problems] with the same rows and seeds")
    rng = np.random.default_rng(seed)
    # Resampling with replacement = multinomial counts; a statistic is then a weighted mean (vectorised over draws).
    seed_w = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot) / n_seeds  # [B, S]
    stat = np.zeros((n_boot, n_rows))
    for a in arrays:
        n_problems = a.shape[2]
        problem_w = rng.multinomial(n_problems, np.full(n_problems, 1 / n_problems), size=n_boot) / n_problems
        per_seed = np.einsum("rsp,bp->brs", a, problem_w)  # [B, rows, seeds]
        stat += np.einsum("brs,bs->br", per_seed, seed_w)
    stat /= len(arrays)
    point = np.mean([a.mean(axis=(1, 2)) for a in arrays], axis=0)
    tail = (1 - level) / 2 * 100
    out = {"mean": point, "low": np.percentile(stat, tail, axis=0), "high": np.percentile(stat, 100 - tail, axis=0)}
    if reference is not None:
        diffs = stat - stat[:, [reference]]
        out["diff"] = point - point[reference]
        out["diff_low"] = np.percentile(diffs, tail, axis=0)
        out["diff_high"] = np.percentile(diffs, 100 - tail, axis=0)
    return out


def detectable_difference(se: float, n: int, level: float = LEVEL, power: float = 0.8) -> float:
    """Smallest true mean difference that a two-sided paired t-test over ``n`` seeds (at ``1 - level``) detects
    with probability ``power``, when the mean difference has standard error ``se`` (noncentral t)."""
    if not (se > 0 and n >= 2):
        return float("nan")
    df = n - 1
    crit = sps.t.ppf(0.5 + level / 2, df)

    def shortfall(delta: float) -> float:
        nc = delta / se
        reject = sps.nct.sf(crit, df, nc) + np.nan_to_num(sps.nct.cdf(-crit, df, nc))
        return float(reject) - power

    high = crit * se
    while shortfall(high) < 0:  # power grows with the difference: widen the bracket until it is reached
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high))


def detectable_difference_over_problems(se: float, level: float = LEVEL, power: float = 0.8) -> float:
    """The normal-theory version of :func:`detectable_difference` for an interval over problems
    (:func:`paired_problem_interval`): ``(z_{1-alpha/2} + z_power) * se``."""
    if not se > 0:
        return float("nan")
    return float((sps.norm.ppf(0.5 + level / 2) + sps.norm.ppf(power)) * se)
