"""bench.mkl_branch: which MKL code branches change the lab's gradient bits, and at what cost."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench import mkl_branch


def test_the_summary_compares_each_branch_with_the_pin_bit_for_bit_and_in_time():
    runs = pd.DataFrame([
        {"round": 0, "branch": "AVX2", "loss": "0x1p+0", "grad_norm": "0x1.8p+0", "wall_s": 1.0, "cpu_s": 1.0},
        {"round": 0, "branch": "AUTO", "loss": "0x1p+0", "grad_norm": "0x1.9p+0", "wall_s": 0.9, "cpu_s": 0.9},
        {"round": 0, "branch": "COMPATIBLE", "loss": "0x1p+0", "grad_norm": "0x1.8p+0", "wall_s": 2.0, "cpu_s": 2.0},
        {"round": 1, "branch": "AUTO", "loss": "0x1p+0", "grad_norm": "0x1.9p+0", "wall_s": 1.1, "cpu_s": 1.1},
        {"round": 1, "branch": "COMPATIBLE", "loss": "0x1p+0", "grad_norm": "0x1.7p+0", "wall_s": 1.6, "cpu_s": 1.6},
        {"round": 1, "branch": "AVX2", "loss": "0x1p+0", "grad_norm": "0x1.8p+0", "wall_s": 1.0, "cpu_s": 1.0}])
    table = mkl_branch.summary(runs)
    assert list(table.index) == list(mkl_branch.BRANCHES)
    assert table.same_bits_as_pin.tolist() == [True, False, True]
    assert table.runs_agree.tolist() == [True, True, False]  # COMPATIBLE's two processes disagreed
    assert table.loc["COMPATIBLE", "time_vs_pin"] == pytest.approx(1.8)  # median of 2.0 and 1.6 over 1.0


def test_one_round_measures_every_branch_in_its_own_process(tmp_path):
    assert mkl_branch.main(["--rounds", "1", "--passes", "1", "--output-dir", str(tmp_path)]) == 0
    made = json.loads((tmp_path / "mkl_branch.json").read_text())
    assert [r["branch"] for r in made["runs"]] == list(mkl_branch.BRANCHES)
    assert all(r["loss"] == made["runs"][0]["loss"] for r in made["runs"])  # the forward pass: same loss bits
    assert "| AVX2" in (tmp_path / "mkl_branch.md").read_text()


def test_a_bad_count_is_refused_in_one_line():
    with pytest.raises(SystemExit) as stop:
        mkl_branch.main(["--rounds", "0"])
    assert stop.value.code == 2
