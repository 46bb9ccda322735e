"""The regime map (python -m repro.regime_map) and the default regime's pre-registration (python -m
repro.default_regime): which runs they plan, how they pair them, and the pre-registered stop rule, on synthetic run
records (no training)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from repro import default_regime, planning, regime, regime_map, table_config

TASKS = ("tgpo_lab_id", "tgpo_lab_hard", "tgpo_lab_ood")


def record(label: str, method: str, seed: int, id_: float, hard: float, ood: float = 0.2,
           norms=(1.0, 1.0), lengths=(27.0,)) -> dict:
    curves = [{"step": i + 1, "grad_norm": g} for i, g in enumerate(norms)]
    curves += [{"step": len(norms) + i + 1, "completions/mean_length": n} for i, n in enumerate(lengths)]
    return {"label": label, "method": method, "seed": seed, "scores": dict(zip(TASKS, (id_, hard, ood))),
            "problems": {}, "curves": curves}


def regime_file(all_wrong: float, teacher_correct: float) -> pd.DataFrame:
    rows = [("GRPO groups", "all-wrong groups (%), steps 1-25", None, all_wrong),
            ("first error", "teacher argmax correct (%)", None, teacher_correct)]
    rows += [("disagreement", "KL(teacher||student) per token", "all", 1.5),
             ("disagreement", "teacher argmax != sampled (%)", "content", 20.0),
             ("disagreement", "teacher argmax != sampled (%)", "style", 30.0)]
    return pd.DataFrame([{"section": s, "statistic": n, "cls": c, "value": v, "low": v - 1, "high": v + 1, "n": 9}
                         for s, n, c, v in rows])


# ------------------------------------------------------------------------------------------------ the map
def test_the_map_plans_grpo_once_per_split_and_every_guided_method_once_per_cell():
    table = table_config.load_table("lab", "regime_map")
    rows = regime_map.map_rows(table)
    cells = regime_map.cells(table)
    assert len(cells) == len(table["teachers"]) * len(table["splits"])
    grpo = [r for r in rows if r.method == "grpo"]
    assert sorted(r.rl_split for r in grpo) == sorted(table["splits"].values())
    guided = [r for r in rows if r.trained and r.method != "grpo"]
    assert len(guided) == len(cells) * (len(table.rows) - 1)
    assert {(r.teacher, r.rl_split) for r in guided} == {(c.teacher, c.split) for c in cells}
    assert len({r.label for r in rows}) == len(rows)
    tgpo = next(r for r in guided if r.method == "tgpo")
    assert tgpo.trainer["guidance_weight"] == table["guidance"]["tgpo"]["guidance_weight"]  # the row's schedule kept


def test_a_config_that_inherits_the_map_leaves_a_row_out_with_null():
    sparse = table_config.load_table("lab", "regime_map_sparse")
    assert {c.split for c in regime_map.cells(sparse)} == {"k5"}
    assert {r.rl_split for r in regime_map.map_rows(sparse) if r.trained} == {"k5"}
    column = table_config.load_table("lab", "regime_map_content_moving")
    assert {(c.teacher, c.split) for c in regime_map.cells(column)} == {("teacher_cross", "k4"), ("teacher_cross", "k5")}


def test_map_cells_pair_each_method_with_grpo_on_the_same_split_and_seeds():
    table = table_config.load_table("lab", "regime_map")
    cells = regime_map.cells(table)
    records = []
    for seed in range(3):
        for density in table["splits"]:
            # GRPO's scores differ by split, so pairing with the other split's GRPO would give other numbers
            base = 0.3 if density.startswith("dense") else 0.1
            records.append(record(f"GRPO [{density}]", "grpo", seed, base + 0.01 * seed, base))
        for i, cell in enumerate(cells):
            base = 0.3 if cell.split == "k4" else 0.1
            for row in table.rows[1:]:
                # RKL's gradient norm swings between 1 and 3 (sd 1; GRPO's: 0) and its last 10 lengths are 40 and
                # its earlier ones 100 (only the last 10 count: GRPO's are 27)
                swings, long = (1.0, 3.0) if row.method == "rkl" else (1.0, 1.0), row.method == "rkl"
                records.append(record(f"{row.label} [{cell.name}]", row.method, seed, base + 0.01 * seed + 0.01 * i,
                                      base + 0.02 * i, norms=swings,
                                      lengths=(100.0,) * 5 + (40.0,) * 10 if long else (27.0,)))
    divergence = {c: {k: float(j) for j, k in enumerate(regime.DIVERGENCE)} for c in cells}
    frame = regime_map.map_frame(records, table, divergence)
    assert len(frame) == len(cells) * (len(table.rows) - 1)
    for i, cell in enumerate(cells):
        part = frame[(frame["kind"] == cell.kind) & (frame["density"] == cell.density)]
        # method − GRPO = (0.01 i on ID + 0.02 i on Harder) / 2 in points, the same at every seed: no spread
        assert part["Δ In-dist. avg"].tolist() == pytest.approx([1.5 * i] * len(part))
        assert part["Δ In-dist. avg ci"].tolist() == pytest.approx([0.0] * len(part), abs=1e-9)
        assert (part["n_seeds"] == 3).all()
        rkl = part.set_index("method").loc["rkl"]
        assert rkl["Δ grad_norm sd"] == pytest.approx(1.0) and rkl["Δ final length"] == pytest.approx(13.0)
        assert part.set_index("method").loc["tgpo", "Δ grad_norm sd"] == pytest.approx(0.0)
        by_method = part.set_index("method")
        assert pd.isna(by_method.loc["tgpo", "Δ In-dist. avg vs TGPO-Reg"])  # a method is not paired with itself
        assert by_method.loc["kdrl", "Δ In-dist. avg vs TGPO-Reg"] == pytest.approx(0.0)  # same scores in a cell
        baseline = cells.index(next(c for c in cells if c.kind == "in-family" and c.split == cell.split))
        expected = 1.5 * (i - baseline)  # this cell's scores − the in-family cell's, same split, same method
        assert by_method["Δ In-dist. avg vs in-family"].tolist() == (
            pytest.approx([expected] * len(part)) if cell.kind != "in-family" else [pytest.approx(float("nan"), nan_ok=True)] * len(part))
        # the dynamics are paired with the in-family cell too: RKL's lengths and norms are the same in every cell
        if cell.kind != "in-family":
            assert by_method.loc["rkl", "Δ final length vs in-family"] == pytest.approx(0.0)
            assert by_method.loc["rkl", "Δ grad_norm sd vs in-family"] == pytest.approx(0.0)
        # no run reported its long-form share: the column is there, empty
        assert by_method["Δ long-form share"].isna().all()
    verdicts = regime_map.claim_verdicts(frame, table)
    assert len(verdicts) == len(table["claims"]) and list(verdicts.columns) == [c.name for c in cells]
    # RKL's gradient norm: sd 1 against GRPO's 0 at every seed, so "varies more" is reproduced everywhere
    assert verdicts.loc["RKL's gradient norm varies more than GRPO's"].str.startswith("reproduced").all()
    # TGPO-Reg − GRPO = 1.5 i with no spread: reproduced where i > 0, inconclusive (0 ± 0) in the first cell
    tgpo = verdicts.loc["TGPO-Reg beats GRPO"]
    assert tgpo.iloc[0].startswith("inconclusive") and tgpo.iloc[1:].str.startswith("reproduced").all()
    # in the in-family cells the comparison with the in-family cell does not exist
    assert (verdicts.loc["RKL loses accuracy under a divergent teacher (vs in-family)"][
        [c.name for c in cells if c.kind == "in-family"]] == "—").all()
    text = regime_map.render(frame, table, type("A", (), {"profile": "lab", "preset": "controlled"}), 3)
    assert "+7.5 ± 0.0" in text and "content-moving, sparse (k5)" in text and "+13.0 ± 0.0" in text


@pytest.mark.parametrize("direction, low, high, verdict", [
    ("more", 0.1, 2.0, "reproduced"), ("more", -2.0, -0.1, "not reproduced"), ("more", -1.0, 1.0, "inconclusive"),
    ("less", -2.0, -0.1, "reproduced"), ("less", 0.1, 2.0, "not reproduced"),
    ("no_more", 0.1, 2.0, "contradicted"), ("no_more", -1.0, 1.0, "not contradicted"),
    ("no_less", -2.0, -0.1, "contradicted"), ("no_less", -1.0, 1.0, "not contradicted"),
    ("within", -1.0, 1.5, "reproduced"), ("within", 2.5, 4.0, "not reproduced"), ("within", -4.0, -2.5, "not reproduced"),
    ("within", 1.0, 3.0, "inconclusive"), ("within", -3.0, 3.0, "inconclusive")])
def test_claim_verdicts_follow_the_interval(direction, low, high, verdict):
    assert regime_map.VERDICTS[direction](low, high, 2.0) == verdict


def test_long_form_share_and_the_dynamics_of_a_run():
    rec = record("x", "grpo", 0, 0.5, 0.5, norms=(1.0, 3.0), lengths=(90.0,) * 3 + (30.0,) * 10)
    rec["long_form"] = {"tgpo_lab_id": 0.5, "tgpo_lab_hard": 0.25}
    assert regime_map.run_dynamics(rec) == {"grad_norm sd": pytest.approx(1.0), "final length": pytest.approx(30.0),
                                            "long-form share": pytest.approx(37.5)}


def test_a_cell_without_a_regime_file_stops_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(regime, "RESULTS", tmp_path)
    with pytest.raises(table_config.UsageError, match="python -m repro.regime --student student --teacher teacher_u0.5"):
        regime.committed("lab", "student", "teacher_u0.5", "k5")


# ------------------------------------------------------------------------------------- the default regime
@pytest.fixture
def two_candidates(tmp_path, monkeypatch):
    """The committed pre-registration config with two candidates, k5 then k6 (its recipe is Table 1's)."""
    from repro.paths import CONFIGS

    folder = tmp_path / "configs" / "lab"
    folder.mkdir(parents=True)
    (folder / "table1.yaml").write_text((CONFIGS / "lab" / "table1.yaml").read_text())
    text = (CONFIGS / "lab" / "default_regime.yaml").read_text()
    (folder / "default_regime.yaml").write_text(text.replace("candidates: [k5]", "candidates: [k5, k6]"))
    monkeypatch.setattr(table_config, "CONFIGS", tmp_path / "configs")
    return tmp_path / "out"


def fake_runs(gains: dict[str, tuple[float, float]]):
    """``planning.run_plan`` standing in for training: GRPO at base + gain on each split, RKL in-family 0.4 and
    cross-family 0.4 - drop; ``gains[split] = (grpo_gain, rkl_drop)`` in fractions."""
    ran = []

    def run_plan(plan, args, desc):
        out = []
        for job in plan.jobs:
            ran.append(job.name)
            gain, drop = gains.get(job.rl_split, (0.0, 0.0))
            if job.method == "base":
                out.append(record(job.label, "base", 0, 0.30, 0.10))
            elif job.method == "grpo":
                out.append(record(job.label, "grpo", job.seed, 0.30 + gain + 0.001 * job.seed, 0.10 + gain))
            else:
                level = 0.4 - (drop if job.variant == default_regime.CROSS_FAMILY else 0.0)
                out.append(record(job.label, "rkl", job.seed, level + 0.001 * job.seed, level))
        return out

    return ran, run_plan


@pytest.mark.parametrize("k5, chosen, k6_runs", [((0.15, 0.3), "k5", False),   # k5 meets all: k6 never runs
                                                 ((0.03, 0.3), "k6", True)])   # GRPO gains too little on k5
def test_the_first_candidate_meeting_every_criterion_is_chosen_and_later_ones_never_run(two_candidates, monkeypatch,
                                                                                        k5, chosen, k6_runs):
    tmp_path = two_candidates
    ran, run_plan = fake_runs({"k5": k5, "k6": (0.2, 0.3)})
    monkeypatch.setattr(planning, "run_plan", run_plan)
    monkeypatch.setattr(planning, "check_ready", lambda plan: None)
    monkeypatch.setattr(regime, "committed", lambda *a: regime_file(50.0, 90.0))
    assert default_regime.main(["--output-dir", str(tmp_path), "--seeds", "2"]) == 0
    assert any("k6" in name for name in ran) == k6_runs
    frame = pd.read_csv(tmp_path / "default_regime_2seeds.csv")
    assert set(frame["rl_split"]) == ({"k5", "k6"} if k6_runs else {"k5"})
    k5_rows = frame[frame["rl_split"] == "k5"].set_index("criterion")
    assert k5_rows.loc["grpo_gain", "mean"] == pytest.approx(100 * k5[0] + 0.025)  # seed offsets on ID only
    assert k5_rows.loc["rkl_drop", "mean"] == pytest.approx(100 * k5[1])
    assert bool(k5_rows.loc["grpo_gain", "met"]) == (chosen == "k5")
    manifest = json.loads((tmp_path / "default_regime_2seeds_manifest.json").read_text())
    assert manifest["chosen"] == chosen and manifest["criteria"]["grpo_gain"] == 12
    assert f"Chosen: **{chosen}**" in (tmp_path / "default_regime_2seeds.md").read_text()


def test_a_candidate_where_grpo_leaves_too_little_headroom_is_not_chosen(two_candidates, monkeypatch):
    """``grpo_headroom`` (100 − GRPO's headline): a split where GRPO saturates cannot show a method beating it."""
    tmp_path = two_candidates
    config = table_config.CONFIGS / "lab" / "default_regime.yaml"
    config.write_text(config.read_text().replace("  rkl_drop: 20", "  rkl_drop: 20\n  grpo_headroom: 25"))
    ran, run_plan = fake_runs({"k5": (0.6, 0.3), "k6": (0.5, 0.3)})  # k5: GRPO at 80 on the headline, k6: 70
    monkeypatch.setattr(planning, "run_plan", run_plan)
    monkeypatch.setattr(planning, "check_ready", lambda plan: None)
    monkeypatch.setattr(regime, "committed", lambda *a: regime_file(50.0, 90.0))
    assert default_regime.main(["--output-dir", str(tmp_path), "--seeds", "2"]) == 0
    frame = pd.read_csv(tmp_path / "default_regime_2seeds.csv").set_index(["rl_split", "criterion"])
    assert frame.loc[("k5", "grpo_headroom"), "mean"] == pytest.approx(100 - 80.025)  # seed offsets on ID only
    assert not frame.loc[("k5", "grpo_headroom"), "met"] and frame.loc[("k6", "grpo_headroom"), "met"]
    assert "Chosen: **k6**" in (tmp_path / "default_regime_2seeds.md").read_text()


def test_each_rows_scores_are_written_and_a_redraw_rewrites_every_table_from_the_committed_runs(two_candidates,
                                                                                                 monkeypatch):
    """The README quotes absolute scores (GRPO near 100, RKL's level with each teacher): they must come from the
    script, and ``--redraw`` must rebuild the tables from the committed runs alone, without training."""
    tmp_path = two_candidates
    ran, run_plan = fake_runs({"k5": (0.15, 0.3)})  # k5 meets every criterion: GRPO ID 45.0/45.1, Harder 25
    monkeypatch.setattr(planning, "run_plan", run_plan)
    monkeypatch.setattr(planning, "check_ready", lambda plan: None)
    monkeypatch.setattr(regime, "committed", lambda *a: regime_file(50.0, 90.0))
    assert default_regime.main(["--output-dir", str(tmp_path), "--seeds", "2"]) == 0
    scores = pd.read_csv(tmp_path / "default_regime_2seeds_scores.csv").set_index("row")
    assert scores.loc["GRPO [k5]", "ID (k=4) mean"] == pytest.approx(45.05)
    assert scores.loc["GRPO [k5]", "In-dist. avg mean"] == pytest.approx((45.05 + 25.0) / 2)
    assert scores.loc["RKL (cross-family) [k5]", "Harder (k=5) mean"] == pytest.approx(10.0)
    assert scores.loc["Base student", "n_seeds"] == 1 and set(scores["rl_split"]) == {"k5"}
    text = (tmp_path / "default_regime_2seeds.md").read_text()
    assert "| GRPO [k5]" in text and "45.0 ± 0.6" in text  # seeds 0 and 1: 45.0 and 45.1

    outputs = ["default_regime_2seeds.md", "default_regime_2seeds.csv", "default_regime_2seeds_scores.csv"]
    written = {name: (tmp_path / name).read_text() for name in outputs}
    for name in outputs:
        (tmp_path / name).unlink()
    monkeypatch.setattr(planning, "run_plan", lambda *a, **k: pytest.fail("--redraw trained"))
    assert default_regime.main(["--output-dir", str(tmp_path), "--seeds", "2", "--redraw"]) == 0
    assert {name: (tmp_path / name).read_text() for name in outputs} == written
    redrawn = json.loads((tmp_path / "default_regime_2seeds_manifest.json").read_text())["redrawn"]
    assert redrawn["records"].endswith("default_regime_2seeds_runs.json") and redrawn["figures"] == outputs


def test_a_redraw_without_committed_runs_is_refused_in_one_line(two_candidates, monkeypatch):
    monkeypatch.setattr(planning, "run_plan", lambda *a, **k: pytest.fail("--redraw trained"))
    monkeypatch.setattr(regime, "committed", lambda *a: regime_file(50.0, 90.0))
    with pytest.raises(table_config.UsageError, match="no committed records hold every run"):
        default_regime.main(["--output-dir", str(two_candidates), "--seeds", "2", "--redraw"])


@pytest.mark.parametrize("all_wrong, first_error", [(30.0, 90.0), (50.0, 60.0)])
def test_a_split_that_misses_a_criterion_of_its_regime_file_is_neither_trained_nor_chosen(two_candidates, monkeypatch,
                                                                                          all_wrong, first_error):
    tmp_path = two_candidates
    ran, run_plan = fake_runs({"k5": (0.2, 0.3), "k6": (0.2, 0.3)})
    monkeypatch.setattr(planning, "run_plan", run_plan)
    monkeypatch.setattr(planning, "check_ready", lambda plan: None)
    monkeypatch.setattr(regime, "committed", lambda *a: regime_file(all_wrong, first_error))
    assert default_regime.main(["--output-dir", str(tmp_path), "--seeds", "2"]) == 0
    text = (tmp_path / "default_regime_2seeds.md").read_text()
    assert "No candidate meets every criterion" in text and text.count("not trained") == 2
    assert ran == []  # decided by the regime files alone
    frame = pd.read_csv(tmp_path / "default_regime_2seeds.csv")
    assert set(frame["criterion"]) == {"all_wrong_groups", "teacher_first_error"} and not frame["met"].all()
    assert json.loads((tmp_path / "default_regime_2seeds_manifest.json").read_text())["not_trained"] == ["k5", "k6"]


@pytest.mark.parametrize("change, message", [("grpo_gain: 12", "unknown criteria ['grpo_gian']"),
                                             ("criteria_hard_column: Harder (k=5)", "criteria_hard_column 'Hard'")])
def test_a_bad_criterion_is_refused_before_anything_trains(two_candidates, monkeypatch, change, message):
    from repro.paths import CONFIGS

    config = table_config.CONFIGS / "lab" / "default_regime.yaml"
    wrong = "grpo_gian: 12" if "gain" in change else "criteria_hard_column: Hard"
    config.write_text(config.read_text().replace(change, wrong))
    assert CONFIGS != table_config.CONFIGS  # the committed config is untouched
    monkeypatch.setattr(planning, "run_plan", lambda *a, **k: pytest.fail("trained before the config was checked"))
    monkeypatch.setattr(planning, "check_ready", lambda plan: None)
    monkeypatch.setattr(regime, "committed", lambda *a: regime_file(50.0, 90.0))
    with pytest.raises(table_config.UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        default_regime.main(["--output-dir", str(two_candidates), "--seeds", "2"])


@pytest.mark.parametrize("claims, message", [
    ("[{claim: x, method: tgpo, column: In-dist. avg vs nobody, direction: more}]", "column one of"),
    ("[{claim: x, method: luffy, column: In-dist. avg, direction: more}]", "method one of"),
    ("[{claim: x, method: tgpo, column: In-dist. avg, direction: sideways}]", "direction must be one of"),
    ("[{claim: x}]", "expected {claim, method, column, direction}"),
    ("[{claim: x, method: tgpo, column: final length, direction: within}]", "a positive 'margin'"),
    ("[{claim: x, method: tgpo, column: final length, direction: more, margin: 2}]", "a positive 'margin'")])
def test_a_bad_claim_is_refused_before_anything_runs(tmp_path, monkeypatch, claims, message):
    from repro.paths import CONFIGS

    folder = tmp_path / "lab"
    folder.mkdir()
    for name in ("table1", "regime_map"):
        (folder / f"{name}.yaml").write_text((CONFIGS / "lab" / f"{name}.yaml").read_text())
    (folder / "bad.yaml").write_text(f"base: regime_map.yaml\nclaims: {claims}\n")
    monkeypatch.setattr(table_config, "CONFIGS", tmp_path)
    with pytest.raises(table_config.UsageError, match="bad.yaml") as err:
        regime_map.check_claims(table_config.load_table("lab", "bad"))
    assert message in str(err.value)


def test_the_claim_columns_are_the_columns_the_map_pairs():
    table = table_config.load_table("lab", "regime_map")
    assert set(regime_map.paired_columns(table)) == {"In-dist. avg", "OOD avg", *regime_map.DYNAMICS,
                                                     "In-dist. avg vs TGPO-Reg", "In-dist. avg vs in-family",
                                                     *(f"{d} vs in-family" for d in regime_map.DYNAMICS)}


def test_the_world_v2_map_judges_the_length_claims_and_draws_the_curves(tmp_path, monkeypatch):
    """regime_map_v2.yaml end to end on stand-in runs: RKL's length grows with the content-moving teacher only,
    TGPO-Reg's stays within the margin of GRPO's; the markdown judges both and the curves figure is written."""
    def run_plan(plan, args, desc):
        out = []
        for job in plan.jobs:
            if job.method == "base":
                out.append(record(job.label, "base", 0, 0.8, 0.01))
                continue
            grows = job.method == "rkl" and job.teacher == "v2_teacher_cross"
            final = {"rkl": 80.0 if grows else 35.0, "tgpo": 31.0 + 0.1 * job.seed}.get(job.method, 30.0 + 0.1 * job.seed)
            rec = record(job.label, job.method, job.seed, 0.8, 0.05, norms=(1.0, 1.0 + 0.01 * job.seed),
                         lengths=(29.0,) * 5 + (final,) * 10)
            rec["long_form"] = {"tgpo_lab_id": 0.5}
            out.append(rec)
        return out

    monkeypatch.setattr(planning, "run_plan", run_plan)
    monkeypatch.setattr(planning, "check_ready", lambda plan: None)
    monkeypatch.setattr(regime, "committed", lambda *a: regime_file(20.0, 90.0))
    assert regime_map.main(["--config", "regime_map_v2", "--output-dir", str(tmp_path), "--seeds", "3"]) == 0
    stem = "regime_map_v2_3seeds"
    assert (tmp_path / f"{stem}_curves.png").stat().st_size > 0 and (tmp_path / f"{stem}.png").exists()
    text = (tmp_path / f"{stem}.md").read_text()
    claims = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    grows = claims["RKL's length grows under a divergent teacher (vs in-family)"]
    assert "reproduced (+45.0" in grows and "not reproduced" not in grows
    assert "reproduced (+1.0" in claims["TGPO-Reg's length tracks GRPO's"]  # 31 vs 30 tokens: inside ±3
    assert "Evaluated answers that write a long step" in text
