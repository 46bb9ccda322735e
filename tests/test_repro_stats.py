"""The lab tables' confidence intervals (repro/stats.py): closed-form cases, coverage on simulated data, power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from repro import stats

T975_DF2 = 4.302652729911275  # Student's t quantile 0.975 with 2 degrees of freedom
Z975 = 1.959963984540054


def test_t_interval_closed_form():
    interval = stats.t_interval([1.0, 2.0, 3.0])
    assert interval.mean == 2.0 and interval.n == 3
    assert interval.se == pytest.approx(1 / math.sqrt(3))
    assert interval.half == pytest.approx(T975_DF2 / math.sqrt(3))
    assert (interval.low, interval.high) == pytest.approx((2 - interval.half, 2 + interval.half))
    assert math.isnan(stats.t_interval([5.0]).half) and stats.t_interval([5.0]).mean == 5.0


def test_paired_t_interval_is_the_interval_of_the_differences():
    a, b = [10.0, 12.0, 9.0, 15.0], [8.0, 11.0, 9.5, 11.0]
    paired = stats.paired_t_interval(a, b)
    direct = stats.t_interval(np.subtract(a, b))
    assert (paired.mean, paired.half) == pytest.approx((direct.mean, direct.half))
    with pytest.raises(ValueError):
        stats.paired_t_interval([1.0, 2.0], [1.0])


def test_t_interval_covers_95_percent_with_three_seeds():
    rng = np.random.default_rng(0)
    hits = [abs(iv.mean - 2.0) <= iv.half for iv in (stats.t_interval(rng.normal(2.0, 1.5, 3)) for _ in range(4000))]
    assert 0.935 <= np.mean(hits) <= 0.965  # 95% +- 2.2 standard errors of 4000 trials


def test_problem_interval_closed_form():
    a, b = np.array([1, 0, 1, 1, 0, 1]), np.array([0, 0, 1, 0])
    one = stats.problem_interval([a])
    assert one.mean == pytest.approx(a.mean()) and one.half == pytest.approx(Z975 * a.std(ddof=1) / math.sqrt(6))
    two = stats.problem_interval([a, b])
    se = math.sqrt(a.var(ddof=1) / 6 + b.var(ddof=1) / 4) / 2
    assert two.mean == pytest.approx((a.mean() + b.mean()) / 2) and two.half == pytest.approx(Z975 * se)


def test_bootstrap_with_one_seed_matches_the_normal_interval_of_paired_problem_differences():
    rng = np.random.default_rng(1)
    n = 2000
    ref = (rng.random(n) < 0.4).astype(float)
    other = np.where(rng.random(n) < 0.8, ref, 1 - ref)  # correlated with ref: pairing matters
    out = stats.paired_bootstrap({"split": np.stack([ref, other])[:, None, :]}, reference=0, n_boot=4000, seed=3)
    d = other - ref
    expected_half = Z975 * d.std(ddof=1) / math.sqrt(n)
    assert out["diff"][1] == pytest.approx(d.mean())
    assert (out["diff_high"][1] - out["diff_low"][1]) / 2 == pytest.approx(expected_half, rel=0.1)
    unpaired_half = Z975 * math.sqrt(ref.var(ddof=1) / n + other.var(ddof=1) / n)
    assert (out["diff_high"][1] - out["diff_low"][1]) / 2 < 0.8 * unpaired_half
    assert out["diff_low"][0] == out["diff_high"][0] == 0.0


def test_bootstrap_over_seeds_and_problems_covers_the_true_difference():
    """Simulated lab: per-problem difficulty shared by both methods, a seed effect per run, a true gain of 3
    points. With many seeds the two-level bootstrap's 95% interval covers the gain about 95% of the time."""
    rng = np.random.default_rng(2)
    n_seeds, n_problems, gain, trials = 30, 200, 0.03, 200
    hits = 0
    for trial in range(trials):
        difficulty = rng.uniform(0.2, 0.8, n_problems)
        seed_effect = rng.normal(0.0, 0.04, (2, n_seeds, 1))
        p = np.clip(difficulty + np.array([0.0, gain])[:, None, None] + seed_effect, 0, 1)
        correct = (rng.random(p.shape) < p).astype(float)
        out = stats.paired_bootstrap({"split": correct}, reference=0, n_boot=500, seed=trial)
        hits += out["diff_low"][1] <= gain <= out["diff_high"][1]
    assert 0.88 <= hits / trials <= 0.99


def test_bootstrap_needs_matching_rows_and_seeds():
    with pytest.raises(ValueError):
        stats.paired_bootstrap({"a": np.zeros((2, 3, 10)), "b": np.zeros((2, 2, 10))}, reference=0)


def test_detectable_difference_has_the_stated_power():
    assert stats.detectable_difference(1.0, 10_000) == pytest.approx(Z975 + 0.8416212335729143, rel=1e-3)
    rng = np.random.default_rng(4)
    n, se = 3, 2.0
    delta = stats.detectable_difference(se, n)
    sigma = se * math.sqrt(n)
    rejected = [not (iv.low <= 0 <= iv.high) for iv in (stats.t_interval(rng.normal(delta, sigma, n)) for _ in range(6000))]
    assert 0.78 <= np.mean(rejected) <= 0.82
    assert math.isnan(stats.detectable_difference(1.0, 1))


def test_paired_problem_interval_is_the_problem_interval_of_the_differences():
    a = [np.array([1.0, 0, 1, 1, 0]), np.array([0.0, 1, 1])]
    b = [np.array([1.0, 1, 0, 1, 0]), np.array([0.0, 0, 1])]
    paired = stats.paired_problem_interval(a, b)
    direct = stats.problem_interval([x - y for x, y in zip(a, b)])
    assert (paired.mean, paired.half) == pytest.approx((direct.mean, direct.half))
    assert paired.mean == pytest.approx(np.mean([x.mean() for x in a]) - np.mean([y.mean() for y in b]))
    same = stats.paired_problem_interval(a, a)
    assert same.mean == 0 and same.half == 0  # one run against itself: no uncertainty left over problems
    with pytest.raises(ValueError):
        stats.paired_problem_interval(a, [b[0]])
    with pytest.raises(ValueError):
        stats.paired_problem_interval(a, [b[0], b[1][:2]])


def test_pairing_by_problem_removes_what_the_two_runs_share():
    # Two runs that solve mostly the same problems: the paired interval is much narrower than the unpaired one.
    rng = np.random.default_rng(0)
    shared = rng.random(600) < 0.5
    a, b = shared.astype(float), shared.astype(float)
    flipped = rng.choice(600, 30, replace=False)
    b[flipped] = 1 - b[flipped]
    paired = stats.paired_problem_interval([a], [b])
    unpaired_half = Z975 * math.sqrt(a.var(ddof=1) / 600 + b.var(ddof=1) / 600)
    assert paired.half < 0.5 * unpaired_half


def test_detectable_difference_over_problems_has_the_stated_power():
    assert stats.detectable_difference_over_problems(1.0) == pytest.approx(Z975 + 0.8416212335729143)
    assert stats.detectable_difference_over_problems(2.0) == pytest.approx(stats.detectable_difference(2.0, 100_000), rel=1e-3)
    rng = np.random.default_rng(5)
    se = 1.5
    delta = stats.detectable_difference_over_problems(se)
    rejected = np.abs(rng.normal(delta, se, 20_000)) > Z975 * se
    assert 0.78 <= rejected.mean() <= 0.82
    assert math.isnan(stats.detectable_difference_over_problems(0.0))
