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


def test_compat_cases_cover_every_gold_form_and_template():
    from bench import mathverify_compat as mc

    cases = mc.generate(1000)
    assert len(cases) == 1000 and cases == mc.generate(1000)  # deterministic
    assert {c["category"] for c in cases} == {g[0] for g in mc.GOLDS}
    assert {c["template"] for c in cases} == {t[0] for t in mc.TEMPLATES}
    assert {c["right"] for c in cases} == {True, False} and {c["think"] for c in cases} == {True, False}
    assert any(r"first \boxed" in c["response"] and "then" in c["response"] for c in cases)


def test_compat_report_lists_every_disagreement(tmp_path):
    from bench import mathverify_compat as mc

    cases = mc.generate(4)
    ours = [{k: True for k in mc.KINDS} for _ in cases]
    ref = [dict(v) for v in ours]
    ref[2]["mv"] = False
    agree = mc.write_outputs(tmp_path, cases, ours, ref, {"math-verify": "0.6.0"})
    assert agree["mv"] == 0.75 and agree["authors"] == 1.0
    md = (tmp_path / "mathverify_compat.md").read_text()
    assert "75.00% agreement (NOT met" in md and f"- case {cases[2]['id']} " in md and "mv: 0.6.0 False, ours True" in md
    rows = list(csv.DictReader((tmp_path / "mathverify_compat.csv").open()))
    assert len(rows) == 4 and rows[2]["mv_060"] == "0" and rows[2]["mv_ours"] == "1"


def test_compat_bench_needs_a_reference_interpreter(capsys, monkeypatch):
    from bench import mathverify_compat as mc

    monkeypatch.delenv("TGPO_MV060_PYTHON", raising=False)
    assert mc.main(["--reference-python", "/no/such/python"]) == 2
    assert "math-verify 0.6.0" in capsys.readouterr().err
