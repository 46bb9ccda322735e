"""Figures for slides: one style per method from the registry, human model names, intervals inside 0..100%, and
figures redrawn from committed run records without training (repro/plots.py, repro/redraw.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from repro import options, planning, plots

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "results" / "lab"


def test_every_method_has_its_own_colour_and_marker_from_the_registry():
    from tgpo.objectives import METHODS

    styles = [plots.method_style(m) for m in METHODS]
    assert len({s["color"] for s in styles}) == len(METHODS) and len({s["marker"] for s in styles}) == len(METHODS)
    # the same method looks the same in a figure of all methods and in one of a few (e.g. the sweep)
    few = plots.row_styles([("G", "grpo", None), ("T", "tgpo", None)])
    assert few["G"]["color"] == plots.method_style("grpo")["color"]
    assert few["T"]["color"] == plots.method_style("tgpo")["color"]
    # rows of one method (Figure 2's teachers) share its marker and differ in shade and line style
    two = plots.row_styles([("in", "rkl", "in-family"), ("cross", "rkl", "cross-family")])
    assert two["in"]["marker"] == two["cross"]["marker"] == plots.method_style("rkl")["marker"]
    assert two["in"]["color"] != two["cross"]["color"] and two["in"]["linestyle"] != two["cross"]["linestyle"]


def test_models_are_named_for_people_with_the_parameter_count_read_from_the_model():
    assert plots.model_label("student") == "student (135k params)"
    assert plots.model_label("teacher_cross", params=False) == "cross-family teacher"
    assert plots.model_label("teacher_t0.5", params=False) == "teacher with 50% cross-family steps"
    assert plots.parameter_count("student") == 135_168


def test_intervals_of_shares_stay_inside_0_and_100_percent():
    low, high = plots.clip_interval(np.array([2.0, 50.0, 99.0]), np.array([7.0, 5.0, 4.0]), 0.0, 100.0)
    assert list(low) == [0.0, 45.0, 95.0] and list(high) == [9.0, 55.0, 100.0]


def test_grids_have_at_most_three_panels_a_row_at_16_9():
    for n in (3, 4, 5):
        fig, axes, legend_ax = plots.grid(n)
        assert len(axes) == n and all(ax.get_gridspec().ncols <= 3 for ax in axes)
        width, height = fig.get_size_inches()
        assert width / height == pytest.approx(16 / 9, rel=0.01) and (legend_ax is None) == (n % 3 == 0)
        plots.plt.close(fig)


@pytest.fixture
def committed(tmp_path, monkeypatch):
    """A copy of the committed Figure 2 and Table 3 (6 seeds) records; training would fail the test."""
    out = tmp_path / "lab"
    out.mkdir()
    for name in ("figure2_runs.json", "figure2_manifest.json", "table3_6seeds_runs.json",
                 "table3_6seeds_manifest.json"):
        shutil.copy(LAB / name, out / name)

    def refuse(*args, **kwargs):
        raise AssertionError("--redraw trained")

    monkeypatch.setattr(planning, "run_plan", refuse)
    monkeypatch.setenv("TGPO_RUNS_DIR", str(tmp_path / "runs"))
    return out


def test_redraw_draws_from_committed_records_and_says_so(committed):
    from repro import figure2

    before = json.loads((committed / "figure2_manifest.json").read_text())
    before.pop("redrawn", None)
    assert options.cli(figure2.main, ["--redraw", "--output-dir", str(committed)]) == 0
    assert (committed / "figure2.png").stat().st_size > 10_000
    after = json.loads((committed / "figure2_manifest.json").read_text())
    assert {k: v for k, v in after.items() if k != "redrawn"} == before  # how the runs were made is untouched
    assert after["redrawn"]["records"].endswith("figure2_runs.json") and after["redrawn"]["figures"] == ["figure2.png"]
    # six seeds: Figure 2 has no runs of its own, so the figure is drawn from Table 3's, and its new manifest says so
    assert options.cli(figure2.main, ["--redraw", "--seeds", "6", "--output-dir", str(committed)]) == 0
    made = json.loads((committed / "figure2_6seeds_manifest.json").read_text())
    assert made["seeds"] == list(range(6)) and made["runs_made_by"].endswith("table3_6seeds_manifest.json")
    assert made["redrawn"]["records"].endswith("table3_6seeds_runs.json")
    assert set(made["rows"]) == {"RKL (in-family)", "RKL (cross-family)"}
    assert not (committed / "figure2_6seeds_runs.json").exists()  # only figures and their manifests are written


def test_redraw_without_the_records_stops_with_one_line(committed, capsys):
    from repro import figure2

    assert options.cli(figure2.main, ["--redraw", "--seeds", "3", "--output-dir", str(committed)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--redraw: no committed records hold every run" in err and len(err.splitlines()) == 1
    assert not (committed / "figure2_3seeds.png").exists()


@pytest.mark.parametrize("script", ["table3", "recipe_probe", "audit"])
def test_scripts_without_figures_refuse_redraw_rather_than_train(script, capsys, monkeypatch, tmp_path):
    import importlib

    def refuse(*args, **kwargs):
        raise AssertionError("--redraw trained")

    monkeypatch.setattr(planning, "run_plan", refuse)
    module = importlib.import_module(f"repro.{script}")
    assert options.cli(module.main, ["--redraw", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--redraw: repro.{script} draws no figures" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_reproduce_all_redraw_runs_only_the_figure_scripts(capsys):
    from repro import reproduce_all

    assert options.cli(reproduce_all.main, ["--redraw", "--dry-run"]) == 0
    out = capsys.readouterr().out
    ran = [line.split()[3] for line in out.splitlines() if line.startswith("===== python -m")]
    assert ran == [f"repro.{s}" for s in reproduce_all.FIGURE_SCRIPTS] and "repro.table3" not in ran
    assert all("--redraw" in line for line in out.splitlines() if line.startswith("===== python -m"))
