"""bench/grader.py (``python -m bench.grader``) runs end to end (quick sets, fixture benchmarks, no oat-llm wheel) and writes its files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmarks"


def _bench():
    from bench import grader

    return grader


def test_generated_pairs_hold_right_and_wrong_answers():
    bench = _bench()
    rows = bench.read_benchmarks(FIXTURES)
    pairs = bench.agreement_pairs(rows, per_benchmark=1000)
    assert {b for b, _, _ in pairs} == set(rows)
    assert len(pairs) > 10 * len(rows)
    forms = bench.math_forms("142.0")
    assert forms[0] == "142.0" and "\\text{142}" in forms and "142\\%" in forms
    assert "142.0" not in bench.wrong_forms("142.0", "7", __import__("random").Random(0))


@pytest.mark.slow
def test_bench_writes_its_figures(tmp_path):
    bench = _bench()
    assert bench.main(["--benchmark-dir", str(FIXTURES), "--no-agreement", "--quick", "--output-dir", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "scorer.csv").open()))
    sections = {r["section"] for r in rows}
    assert {"disagreement", "throughput", "adversarial", "choice_scaling"} <= sections
    slowest = next(float(r["value"]) for r in rows if r["section"] == "adversarial")
    assert slowest < 5.0
    assert "Throughput" in (tmp_path / "scorer.md").read_text()
