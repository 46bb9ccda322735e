"""The divergence sweep (python -m repro.sweep): its x axis is each knob teacher's *measured* divergence from the
student, read from the teacher's regime file, on synthetic run records and regime files (no training)."""

from __future__ import annotations

import pandas as pd
import pytest

from repro import plots, regime, sweep, table_config

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
    sweep.plot(frame, table, tmp_path / "sweep.png", n_seeds=2)
    first_panel = drawn["fig"].axes[0]
    xs = list(first_panel.lines[0].get_xdata())
    assert xs == sorted(KL.values())  # one point per knob teacher, ordered by the measurement
    assert "measured KL" in first_panel.get_xlabel()


def test_a_knob_teacher_without_a_regime_file_is_one_line_naming_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(regime, "RESULTS", tmp_path)
    with pytest.raises(table_config.UsageError, match="python -m repro.regime --student student --teacher teacher_in"):
        sweep.knob_divergence(lab_sweep())
