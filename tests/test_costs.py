"""repro.costs: what each committed result cost, read from its manifest and runs file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from repro import costs
from repro.table_config import UsageError


def write_result(folder, stem, records=None, wall=600.0, **manifest):
    folder.mkdir(parents=True, exist_ok=True)
    made = {"command": f"python -m repro.{stem}", "git_sha": "0123456789abcdef", "started_utc": "2026-12-07T00:00:00",
            "wall_time_s": wall, "machine": {"cpu_model": "AMD EPYC", "job_kernels_isa": "avx2"}, **manifest}
    (folder / f"{stem}_manifest.json").write_text(json.dumps(made))
    if records is not None:
        (folder / f"{stem}_runs.json").write_text(json.dumps(records))


def run(name, key, reused, train, evaluate=30.0):
    return {"name": name, "cache": {"key": key, "reused": reused}, "train_seconds": train, "eval_seconds": evaluate}


def test_runs_shared_by_two_rows_count_once_and_reused_runs_cost_nothing_new(tmp_path):
    records = [run("grpo-s0", "a", False, 90.0), run("luffy-in-s0", "b", True, 150.0),
               run("luffy-cross-s0", "b", True, 150.0)]  # two rows, one run (as LUFFY's in-family row)
    write_result(tmp_path, "table9", records, wall=120.0)
    write_result(tmp_path, "regime_x", None, wall=90.0)  # a regime file: no runs file
    frame = costs.result_costs(tmp_path).set_index("result")
    assert frame.loc["table9", "runs"] == 2 and frame.loc["table9", "reused"] == 1
    assert frame.loc["table9", "all_runs_min"] == pytest.approx((120.0 + 180.0) / 60, abs=0.05)
    assert frame.loc["table9", "new_runs_min"] == pytest.approx(120.0 / 60, abs=0.05)
    assert frame.loc["table9", "wall_min"] == 2.0 and frame.loc["table9", "git_sha"] == "0123456"
    assert pd.isna(frame.loc["regime_x", "runs"]) and frame.loc["regime_x", "wall_min"] == 1.5


def test_main_writes_the_table_and_refuses_a_folder_without_manifests(tmp_path, monkeypatch):
    monkeypatch.setattr(costs, "RESULTS", tmp_path)
    write_result(tmp_path / "lab", "table9", [run("grpo-s0", "a", False, 60.0, 0.0)], redrawn={"command": "x"})
    assert costs.main(["--output-dir", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "costs.csv")
    assert table.loc[0, "result"] == "table9" and bool(table.loc[0, "redrawn"]) and table.loc[0, "new_runs_min"] == 1.0
    assert "| table9" in (tmp_path / "out" / "costs.md").read_text()
    with pytest.raises(UsageError, match="no \\*_manifest.json"):
        costs.main(["--profile", "smoke"])


def test_an_unreadable_manifest_is_named_in_one_line(tmp_path):
    tmp_path.joinpath("broken_manifest.json").write_text("{not json")
    with pytest.raises(UsageError, match="broken_manifest.json: cannot be read"):
        costs.result_costs(tmp_path)


def test_reproduce_all_counts_a_run_two_results_share_once_and_names_a_missing_one(tmp_path):
    write_result(tmp_path, "table1", [run("grpo-s0", "a", False, 120.0, 0.0), run("tgpo-s0", "b", False, 60.0, 0.0)])
    write_result(tmp_path, "figure4", [run("grpo-s0", "a", True, 120.0, 0.0)])  # Figure 4 plots Table 1's runs
    together = costs.combined(tmp_path, stems=("table1", "figure4", "sweep"))
    assert together == {"runs": 2, "all_runs_min": 3.0, "missing": ["sweep"]}
    text = costs.render(costs.result_costs(tmp_path), "lab", together)
    assert "2 distinct runs" in text and "no runs file for sweep" in text
