"""The divergence sweep (python -m repro.sweep): its x axis is each knob teacher's *measured* divergence from the
student, read from the teacher's regime file, on synthetic run records and regime files (no training)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repro import options, planning, plots, regime, stats, sweep, table_config, tables

LAB = Path(__file__).resolve().parents[1] / "results" / "lab"

TASKS = ("tgpo_lab_id", "tgpo_lab_hard", "tgpo_lab_ood")
#: Measured KL per knob teacher, deliberately not in the knob's order (the x axis must follow the measurement).
KL = {"teacher_in": 0.2, "teacher_t0.25": 1.9, "teacher_t0.5": 0.9, "teacher_t0.75": 1.2, "teacher_cross": 1.6}


def regime_file(kl: float) -> pd.DataFrame:
    rows = [("KL(teacher||student) per token", "all", kl), ("teacher argmax != sampled (%)", "content", 10 * kl),
            ("teacher argmax != sampled (%)", "style", 20 * kl)]
    return pd.DataFrame([{"section": "disagreement", "statistic": n, "cls": c, "value": v, "low": v, "high": v, "n": 9}
                         for n, c, v in rows])


@pytest.fixture
def regime_files(tmp_path, monkeypatch):
    folder = tmp_path / "lab"
    folder.mkdir()
    for teacher, kl in KL.items():
        regime_file(kl).to_csv(folder / f"regime_student_{teacher}_k4.csv", index=False)
    monkeypatch.setattr(regime, "RESULTS", tmp_path)
    return folder


def lab_sweep() -> table_config.Table:
    return table_config.load_table("lab", "sweep")


def records(table: table_config.Table) -> list[dict]:
    out = []
    for row in sweep.knob_rows(table):
        for seed in range(2):
            score = 0.4 + 0.1 * float(row.variant) + 0.01 * seed
            out.append({"label": row.label, "method": row.method, "variant": row.variant, "seed": seed,
                        "scores": dict(zip(TASKS, (score, score, score))), "problems": {}, "curves": []})
    return out


def test_the_lab_sweep_has_five_knob_teachers_at_four_seeds():
    table = lab_sweep()
    assert len(table.get("knob")) >= 5 and table["seeds"] >= 4
    assert {k["teacher"] for k in table.get("knob")} == set(KL)


def test_each_knob_gets_its_teachers_measured_divergence(regime_files):
    table = lab_sweep()
    measured = sweep.knob_divergence(table)
    teacher_of = {str(float(k["value"])): k["teacher"] for k in table.get("knob")}
    assert {knob: m[sweep.X_AXIS] for knob, m in measured.items()} == {k: KL[t] for k, t in teacher_of.items()}
    frame = sweep.sweep_frame(records(table), table, measured)
    for _, row in frame.iterrows():
        kl = KL[teacher_of[str(row.knob)]]
        assert (row[sweep.X_AXIS], row["content disagreement (%)"], row["style disagreement (%)"]) == pytest.approx(
            (kl, 10 * kl, 20 * kl))


def test_the_figure_plots_accuracy_against_the_measured_divergence_not_the_knob(regime_files, tmp_path, monkeypatch):
    table = lab_sweep()
    frame = sweep.sweep_frame(records(table), table, sweep.knob_divergence(table))
    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, out, **kw: drawn.setdefault("fig", fig))
    sweep.plot(frame, sweep.paired_frame(records(table), table, sweep.knob_divergence(table)), table,
               tmp_path / "sweep.png", n_seeds=2)
    first_panel = drawn["fig"].axes[0]
    xs = list(first_panel.lines[0].get_xdata())
    assert xs == sorted(KL.values())  # one point per knob teacher, ordered by the measurement
    assert "measured KL" in first_panel.get_xlabel()


def test_a_knob_teacher_without_a_regime_file_is_one_line_naming_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(regime, "RESULTS", tmp_path)
    with pytest.raises(table_config.UsageError, match="python -m repro.regime --student student --teacher teacher_in"):
        sweep.knob_divergence(lab_sweep())


#: GRPO's headline per seed: a large seed effect that every method shares (same seed, same RL data order).
GRPO_BY_SEED = {0: 30.0, 1: 50.0, 2: 36.0, 3: 44.0}
#: Each method's own per-seed offset from GRPO at the knob (small against the seed effect).
OFFSET = {"rkl": {0: 5.0, 1: 7.0, 2: 6.0, 3: 8.0}, "kdrl": {0: -1.0, 1: 1.0, 2: 0.0, 3: 2.5},
          "tgpo": {0: 2.0, 1: 2.5, 2: 1.0, 3: 3.0}}


def seed_effect_records(table: table_config.Table, drop: tuple[str, int] | None = None) -> list[dict]:
    """Records whose in-distribution average is GRPO's seed value plus the method's offset at that seed, plus 3
    points per knob step (so a knob mixed up with another shows), in shuffled order; ``drop``: (method, seed) left
    out."""
    out = []
    for row in sweep.knob_rows(table):
        for seed, base in GRPO_BY_SEED.items():
            if (row.method, seed) == drop:
                continue
            score = base + (0.0 if row.method == "grpo" else OFFSET[row.method][seed] + 3 * float(row.variant))
            out.append({"label": row.label, "method": row.method, "variant": row.variant, "seed": seed,
                        "scores": dict(zip(TASKS, (score / 100, score / 100, 0.1))), "problems": {}, "curves": []})
    random.Random(0).shuffle(out)
    return out


def test_method_minus_grpo_is_paired_by_seed_not_by_record_order(regime_files):
    """The difference is the mean of the per-seed differences, with the t interval of those differences: narrow,
    since the seed effect cancels. Unpaired (each mean's own interval) it would be about ten times wider; paired by
    record order (the records are shuffled) the differences would carry the seed effect."""
    table = lab_sweep()
    measured = sweep.knob_divergence(table)
    paired = sweep.paired_frame(seed_effect_records(table), table, measured)
    assert set(paired.method) == {"rkl", "kdrl", "tgpo"} and len(paired) == 3 * len(table.get("knob"))
    for _, row in paired.iterrows():
        diffs = [OFFSET[row.method][s] + 3 * row.knob for s in GRPO_BY_SEED]
        expected = stats.t_interval(diffs)
        assert row["Δ In-dist. avg mean"] == pytest.approx(np.mean(diffs), abs=1e-3)
        assert (row["Δ In-dist. avg low"], row["Δ In-dist. avg high"]) == pytest.approx(
            (expected.low, expected.high), abs=1e-3)
        assert row["n_seeds"] == len(GRPO_BY_SEED)
        assert row[sweep.X_AXIS] == measured[str(row.knob)][sweep.X_AXIS]
    unpaired = stats.t_interval(list(GRPO_BY_SEED.values())).half
    assert (paired["Δ In-dist. avg high"] - paired["Δ In-dist. avg low"]).max() < unpaired


def test_the_markdown_puts_each_method_and_knob_in_its_own_cell(regime_files):
    """sweep.md, which the docs quote: a grid of method x knob, scores then paired differences; a cell that swapped
    knobs or methods would show another method's offset."""
    table = lab_sweep()
    measured = sweep.knob_divergence(table)
    recs = seed_effect_records(table)
    text = sweep.render(sweep.sweep_frame(recs, table, measured), sweep.paired_frame(recs, table, measured), table, 4)
    scores, paired = text.split("## Method − GRPO")
    knobs = [float(k["value"]) for k in table.get("knob")]
    for method in ("rkl", "kdrl", "tgpo"):
        label = next(r.label for r in sweep.knob_rows(table) if r.method == method).rsplit(" (knob ", 1)[0]
        line = next(ln for ln in paired.splitlines() if ln.startswith(f"| {label} "))
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        assert [float(c.split(" [")[0]) for c in cells] == pytest.approx(
            [np.mean([OFFSET[method][s] + 3 * k for s in GRPO_BY_SEED]) for k in knobs], abs=0.051)
    assert scores.count("| GRPO ") == 1 and "0.9 (" in scores


def test_a_seed_one_method_lacks_is_left_out_of_its_pairs(regime_files):
    """A method missing seed 2 is paired with GRPO on seeds 0, 1 and 3 only (paired by position, seed 3 would meet
    GRPO's seed 2)."""
    table = lab_sweep()
    paired = sweep.paired_frame(seed_effect_records(table, drop=("rkl", 2)), table, sweep.knob_divergence(table))
    for _, row in paired[paired.method == "rkl"].iterrows():
        diffs = [OFFSET["rkl"][s] + 3 * row.knob for s in (0, 1, 3)]
        assert row["n_seeds"] == 3
        assert (row["Δ In-dist. avg mean"], row["Δ In-dist. avg low"]) == pytest.approx(
            (np.mean(diffs), stats.t_interval(diffs).low), abs=1e-3)
    assert (paired[paired.method != "rkl"].n_seeds == 4).all()


def test_the_figure_has_a_method_minus_grpo_panel_with_a_zero_line(regime_files, tmp_path, monkeypatch):
    table = lab_sweep()
    measured = sweep.knob_divergence(table)
    recs = seed_effect_records(table)
    paired = sweep.paired_frame(recs, table, measured)
    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, out, **kw: drawn.setdefault("fig", fig))
    sweep.plot(sweep.sweep_frame(recs, table, measured), paired, table, tmp_path / "sweep.png", n_seeds=4)
    panel = next(ax for ax in drawn["fig"].axes if "method − GRPO" in ax.get_title())
    assert any(list(line.get_ydata()) == [0.0, 0.0] for line in panel.lines)  # the zero line
    bars = panel.containers
    assert len(bars) == 3
    for container, method in zip(bars, dict.fromkeys(paired.method)):
        sub = paired[paired.method == method].sort_values(sweep.X_AXIS)
        xs, ys = container.lines[0].get_xdata(), container.lines[0].get_ydata()
        assert list(ys) == pytest.approx(list(sub["Δ In-dist. avg mean"]))
        assert list(xs) == pytest.approx(sorted(KL.values()), abs=0.05)  # the measured KL (points set slightly apart)


def test_redraw_writes_the_paired_csv_from_the_committed_runs(tmp_path, monkeypatch):
    """``python -m repro.sweep --redraw`` writes sweep_paired.csv (and the figure) from the committed runs without
    training, and leaves sweep.csv alone."""
    out = tmp_path / "lab"
    out.mkdir()
    for name in ("sweep_runs.json", "sweep_manifest.json"):
        shutil.copy(LAB / name, out / name)

    def refuse(*args, **kwargs):
        raise AssertionError("--redraw trained")

    monkeypatch.setattr(planning, "run_plan", refuse)
    monkeypatch.setenv("TGPO_RUNS_DIR", str(tmp_path / "runs"))
    assert options.cli(sweep.main, ["--redraw", "--output-dir", str(out)]) == 0
    written = pd.read_csv(out / "sweep_paired.csv")
    table = lab_sweep()
    runs = json.loads((out / "sweep_runs.json").read_text())
    assert written.equals(sweep.paired_frame(runs, table, sweep.knob_divergence(table)).round(3))
    assert len(written) == 3 * len(table.get("knob")) and (written.n_seeds == table["seeds"]).all()
    assert not (out / "sweep.csv").exists()
    manifest = json.loads((out / "sweep_manifest.json").read_text())
    assert manifest["redrawn"]["figures"] == ["sweep.png", "sweep_paired.csv", "sweep.md"]
    frame = sweep.sweep_frame(runs, table, sweep.knob_divergence(table))
    rkl = frame[(frame.method == "rkl") & (frame.knob == 0.9)].iloc[0]
    assert f"| {tables.cell(rkl['In-dist. avg mean'], rkl['In-dist. avg ci'])} " in (out / "sweep.md").read_text()
