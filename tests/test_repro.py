"""The reproduction scripts: table arithmetic, reported-number handling, the paper profile's guard rails, and
every script's smoke profile end to end (real trainer, real lm-eval tasks, tiny lab models)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "repro"))

import tables  # noqa: E402
from common import prepare_output_dir, read_config  # noqa: E402


def test_seed_table_means_and_sample_std():
    records = [
        {"method": "grpo", "seed": s, "scores": {"a": x, "b": y}, "extra": {}}
        for s, (x, y) in enumerate([(0.5, 0.1), (0.7, 0.3), (0.6, 0.2)])
    ]
    table = tables.seed_table(tables.scores_frame(records), {"a": "A", "b": "B"}, {"avg": ["A", "B"]}, ["grpo"])
    row = table.loc["grpo"]
    assert row["A mean"] == pytest.approx(60.0) and row["A std"] == pytest.approx(10.0)
    assert row["avg mean"] == pytest.approx(40.0) and row["avg std"] == pytest.approx(10.0)
    assert row["n_seeds"] == 3
    assert "60.0 ± 10.0" in tables.to_markdown(table)


def test_reported_section_only_copies_numbers_from_the_reference_csv():
    ref = pd.read_csv(tables.PAPER_REFERENCE_CSV)
    text = tables.reported_section(["aime24", "math500", "gpqa_diamond"])
    assert "Reported, not measured" in text
    cells = [c.strip() for line in text.splitlines() if line.startswith("| ") and "---" not in line
             for c in line.strip("|").split("|")[2:]]
    numbers = {f"{v:.1f}" for v in ref.score.dropna()}
    assert cells and all(c == "" or c in numbers for c in cells if c not in ("aime24", "math500", "gpqa_diamond"))


def test_configs_inherit_and_override(tmp_path):
    (tmp_path / "base.yaml").write_text("a: 1\ntrainer: {x: 1, y: 2}\n")
    (tmp_path / "child.yaml").write_text("inherit: base.yaml\ntrainer: {y: 3}\n")
    assert read_config(tmp_path / "child.yaml") == {"a": 1, "trainer": {"x": 1, "y": 3}}


def test_earlier_outputs_are_moved_not_overwritten(tmp_path, capsys):
    (tmp_path / "table1.csv").write_text("old")
    prepare_output_dir(tmp_path, ["table1.csv", "table1.md"])
    moved = list((tmp_path / "previous").glob("*/table1.csv"))
    assert len(moved) == 1 and moved[0].read_text() == "old" and not (tmp_path / "table1.csv").exists()
    assert "moved to" in capsys.readouterr().out


def run_script(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_paper_profile_without_gpus_stops_with_a_clear_message():
    result = run_script("repro/table1.py", "--profile", "paper")
    assert result.returncode == 2
    assert "needs CUDA GPUs" in result.stderr and "--dry-run" in result.stderr


def test_paper_profile_dry_run_plans_every_row():
    result = run_script("repro/table1.py", "--profile", "paper", "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    for method in ("grpo", "luffy", "rkl", "kdrl", "kdrl_reference", "tgpo"):
        assert f"7b_cross_{method}.yaml" in result.stdout
    assert result.stdout.count("tgpo eval --model") == 7


@pytest.mark.slow
def test_every_script_runs_its_smoke_profile(tmp_path):
    """``reproduce_all --profile smoke``: every table and figure from real (tiny) training and evaluation."""
    out = tmp_path / "results"
    result = run_script("repro/reproduce_all.py", "--profile", "smoke", "--output-dir", str(out),
                        env={"TGPO_RUNS_DIR": str(tmp_path / "runs")}, timeout=900)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    for name in ("table1", "table2", "table3"):
        assert (out / f"{name}.md").exists() and (out / f"{name}.csv").exists()
        manifest = json.loads((out / f"{name}_manifest.json").read_text())
        assert manifest["profile"] == "smoke" and manifest["git_sha"] and manifest["versions"]["trl"]
    for png in ("table1_curves.png", "figure2.png", "figure4.png", "figure6.png", "figure5.png", "sweep.png"):
        assert (out / png).stat().st_size > 10_000, png
    with (out / "table1.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == [tables.METHOD_LABELS[m] for m in
                                           ("base", "grpo", "luffy", "rkl", "kdrl", "kdrl_reference", "tgpo")]
    for r in rows:
        assert 0.0 <= float(r["ID (k=4) mean"]) <= 100.0
    runs = json.loads((out / "table1_runs.json").read_text())
    trained = [r for r in runs if r["method"] != "base"]
    assert trained and all(len(r["curves"]) == 2 for r in trained)  # two logged steps each
    assert any("guidance_weight" in r["curves"][0] for r in trained if r["method"] == "tgpo")
    sweep = pd.read_csv(out / "sweep.csv")
    assert set(sweep.knob) == {0.0, 0.5, 0.9}
