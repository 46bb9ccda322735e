"""The trainer bench's derived figures (bench/trainer.py): ratios and the guidance share's cost come from the
per-step records as documented, whatever the timings."""

from __future__ import annotations

import statistics

import pytest

from bench.trainer import CONTENDERS, step_rows
from tgpo import TGPOConfig


def synthetic_log(share_cost: float, share_rounds: set[int]) -> list[dict]:
    """Three timed rounds after a warm-up; TGPO's step costs 2 s plus ``share_cost`` where the share is measured;
    suite GRPO costs 1.0, 1.1 and 0.9 times TRL's 1 s."""
    log = []
    grpo_factor = {1: 1.0, 2: 1.1, 3: 0.9}
    for rnd in range(4):
        for name in CONTENDERS:
            step = {"trl_grpo": 1.0, "grpo": grpo_factor.get(rnd, 1.0)}.get(name, 2.0)
            rec = {"round": rnd, "contender": name, "wall": step, "cpu": step}
            if name == "tgpo" and rnd in share_rounds:
                rec.update(wall=step + share_cost, cpu=step + share_cost, diagnostics=share_cost,
                           diagnostics_cpu=share_cost, loss=share_cost, loss_cpu=share_cost)
            log.append(rec)
    return log


def test_ratio_is_the_median_of_per_round_ratios_over_timed_rounds():
    rows = step_rows(synthetic_log(0.0, set()))
    ratio = next(r for r in rows if r["section"] == "ratio" and r["name"] == "grpo / trl_grpo" and r["clock"] == "cpu")
    assert ratio["value"] == pytest.approx(1.0) and (ratio["low"], ratio["high"]) == pytest.approx((0.9, 1.1))
    assert ratio["n"] == 3  # the warm-up round 0 is left out


def test_guidance_share_cost_is_spread_over_the_trainers_cadence():
    every = TGPOConfig.__dataclass_fields__["guidance_share_every"].default
    rows = {r["name"]: r for r in step_rows(synthetic_log(0.2, {0, 2})) if r["section"] == "share"}
    cost = rows["cost per measured step"]
    assert cost["value"] == pytest.approx(0.2) and cost["n"] == 1  # round 0 is the warm-up
    amortised = next(r for n, r in rows.items() if n.startswith("amortised"))
    tgpo_median = statistics.median([2.0, 2.2, 2.0])
    assert amortised["value"] == pytest.approx(0.2 / every / tgpo_median)


def test_no_share_rows_when_no_step_measured_it():
    assert not [r for r in step_rows(synthetic_log(0.0, set())) if r["section"] == "share"]
