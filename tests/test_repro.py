"""The reproduction scripts: the table-config schema, table arithmetic and intervals, reported-number handling, the
paper profile's guard rails, and every script's smoke profile end to end (real trainer, real lm-eval tasks, tiny lab
models)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pandas as pd
import pytest

from repro import options, planning, table_config, tables
from tgpo.objectives import METHODS, guidance_weight

REPO = Path(__file__).resolve().parents[1]
T975 = {2: 4.302652729911275, 3: 3.182446305284263}  # Student's t quantile 0.975 by degrees of freedom


def record(label, seed, scores, method="grpo", problems=None):
    return {"label": label, "method": method, "seed": seed, "scores": scores, "problems": problems or {}}


# ------------------------------------------------------------------------------------------------- tables
def test_cells_are_t_intervals_over_seeds_and_differences_are_paired():
    grpo = [(0.5, 0.1), (0.7, 0.3), (0.6, 0.2)]
    tgpo = [(0.6, 0.1), (0.9, 0.2), (0.6, 0.3)]
    records = [record("GRPO", s, {"a": x, "b": y}) for s, (x, y) in enumerate(grpo)]
    records += [record("TGPO", s, {"a": x, "b": y}, method="tgpo") for s, (x, y) in enumerate(tgpo)]
    table = tables.summary_table(records, {"a": "A", "b": "B"}, {"avg": ["A", "B"]}, ["GRPO", "TGPO"], reference="GRPO")
    row = table.loc["GRPO"]
    assert row["A mean"] == pytest.approx(60.0) and row["A std"] == pytest.approx(10.0)
    assert row["A ci"] == pytest.approx(T975[2] * 10.0 / math.sqrt(3))
    assert row["avg mean"] == pytest.approx(40.0) and row["n_seeds"] == 3
    diffs = [100 * (t[0] - g[0]) for t, g in zip(tgpo, grpo)]  # 10, 20, 0: paired by seed
    assert table.loc["TGPO", "Δ A"] == pytest.approx(10.0)
    sd = pd.Series(diffs).std(ddof=1)
    assert table.loc["TGPO", "Δ A ci"] == pytest.approx(T975[2] * sd / math.sqrt(3))
    unpaired_sd = math.sqrt(pd.Series([60, 90, 60]).var() / 3 + pd.Series([50, 70, 60]).var() / 3)
    assert table.loc["TGPO", "Δ A ci"] != pytest.approx(T975[2] * unpaired_sd)
    assert "60.0 ± 24.8" in tables.scores_markdown(table)
    assert "+10.0 ±" in tables.differences_markdown(table, "GRPO") and "—" in tables.differences_markdown(table, "GRPO")


def test_a_once_evaluated_row_gets_a_problem_interval_and_is_paired_at_every_seed():
    problems = {"a": [1, 0, 1, 1], "b": [0, 0, 1, 0]}
    records = [record("Base", 0, {"a": 0.75, "b": 0.25}, method="base", problems=problems)]
    records += [record("GRPO", s, {"a": x, "b": 0.5}) for s, x in enumerate([0.5, 0.7, 0.6, 0.8])]
    table = tables.summary_table(records, {"a": "A", "b": "B"}, {"avg": ["A", "B"]}, ["Base", "GRPO"], reference="GRPO")
    var_a = pd.Series([100, 0, 100, 100]).var() / 4
    assert table.loc["Base", "A ci"] == pytest.approx(1.959964 * math.sqrt(var_a), rel=1e-5)
    var_b = pd.Series([0, 0, 100, 0]).var() / 4
    assert table.loc["Base", "avg ci"] == pytest.approx(1.959964 * math.sqrt(var_a + var_b) / 2, rel=1e-5)
    diffs = [75 - x for x in (50, 70, 60, 80)]
    assert table.loc["Base", "Δ A"] == pytest.approx(sum(diffs) / 4)
    assert table.loc["Base", "Δ A ci"] == pytest.approx(T975[3] * pd.Series(diffs).std() / 2)


def test_a_one_seed_table_pairs_its_runs_by_problem_and_says_so():
    grpo = {"a": [1, 0, 1, 1], "b": [0, 0, 1, 0]}
    tgpo = {"a": [1, 1, 1, 0], "b": [0, 1, 1, 0]}
    records = [record("GRPO", 0, {"a": 0.75, "b": 0.25}, problems=grpo),
               record("TGPO", 0, {"a": 0.75, "b": 0.5}, method="tgpo", problems=tgpo)]
    table = tables.summary_table(records, {"a": "A", "b": "B"}, {"avg": ["A", "B"]}, ["GRPO", "TGPO"], reference="GRPO")
    diff_a = pd.Series([0, 100, 0, -100])  # per-problem differences, TGPO − GRPO
    assert table.loc["TGPO", "Δ A"] == pytest.approx(0.0)
    assert table.loc["TGPO", "Δ A ci"] == pytest.approx(1.959964 * diff_a.std() / 2, rel=1e-5)
    diff_b = pd.Series([0, 100, 0, 0])
    assert table.loc["TGPO", "Δ avg"] == pytest.approx(12.5)
    assert table.loc["TGPO", "Δ avg ci"] == pytest.approx(1.959964 * math.sqrt(diff_a.var() / 4 + diff_b.var() / 4) / 2,
                                                          rel=1e-5)
    _, md = tables.method_table(records, {"a": "A", "b": "B"}, {"avg": ["A", "B"]}, ["GRPO", "TGPO"], "GRPO", "T")
    assert "cover problem sampling only" in md and "seed-to-seed variation is not in these intervals" in md
    assert "t interval over the per-seed paired differences" not in md
    several = records + [record("GRPO", 1, {"a": 0.5, "b": 0.25}, problems=grpo),
                         record("TGPO", 1, {"a": 0.5, "b": 0.5}, method="tgpo", problems=tgpo)]
    _, md = tables.method_table(several, {"a": "A", "b": "B"}, {"avg": ["A", "B"]}, ["GRPO", "TGPO"], "GRPO", "T")
    assert "t interval over the per-seed paired differences" in md and "problem sampling only" not in md


def test_reported_section_only_copies_numbers_from_the_reference_csv():
    ref = pd.read_csv(tables.PAPER_REFERENCE_CSV)
    text = tables.reported_section(["aime24", "math500", "gpqa_diamond"])
    assert "Reported, not measured" in text and "nan" not in text
    cells = [c.strip() for line in text.splitlines() if line.startswith("| ") and "---" not in line
             for c in line.strip("|").split("|")[2:]]
    numbers = {f"{v:.1f}" for v in ref.score.dropna()}
    assert cells and all(c == "" or c in numbers for c in cells if c not in ("aime24", "math500", "gpqa_diamond"))


# ------------------------------------------------------------------------------------------ table configs
def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_table_configs_inherit_and_rows_are_replaced_not_merged(tmp_path):
    write(tmp_path / "parent.yaml", "student: s\nseeds: 2\ncolumns: {t: T}\ntrainer: {x: 1, y: 2}\n"
                                    "rows: [base, grpo, {method: tgpo, trainer: {guidance_weight: 0.1}}]\n")
    child = write(tmp_path / "child.yaml", "base: parent.yaml\ntrainer: {y: 3}\n"
                                           "rows: [{method: rkl, variant: in, teacher: t_in}]\n")
    table = table_config.load_table("lab", "child", child)
    assert table.trainer == {"x": 1, "y": 3}
    assert [(r.key, r.label, r.teacher) for r in table.rows] == [("rkl@in", "RKL (in)", "t_in")]
    parent = table_config.load_table("lab", "parent", tmp_path / "parent.yaml")
    assert [r.label for r in parent.rows] == ["Base student", "GRPO", METHODS["tgpo"].label]
    assert parent.rows[2].trainer == {"guidance_weight": 0.1}


@pytest.mark.parametrize("rows, profile, message", [
    ("[nosuch]", "lab", "method 'nosuch'"),
    ("[{method: grpo, colour: red}]", "lab", "unknown keys ['colour']"),
    ("[grpo, grpo]", "lab", "same key"),
    ("[{method: grpo, config: x.yaml}]", "lab", "not a training config"),
    ("[{method: grpo}]", "paper", "needs `config`"),
    ("[{method: grpo, trainer: {a: 1}, config: p.yaml}]", "paper", "not lab settings"),
    ("[{method: grpo, config: missing.yaml}]", "paper", "does not exist"),
    ("[{method: grpo, rl_split: k9}]", "lab", "RL split 'k9'"),
    ("[{method: grpo, rl_split: k5, config: p.yaml}]", "paper", "not lab settings"),
])
def test_bad_table_configs_are_refused_naming_the_row(tmp_path, rows, profile, message):
    write(tmp_path / "p.yaml", "model: m\n")
    path = write(tmp_path / "t.yaml", f"student: s\nseeds: 1\ncolumns: {{t: T}}\nrows: {rows}\n")
    with pytest.raises(table_config.UsageError, match="t.yaml") as err:
        table_config.load_table(profile, "t", path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_rl_splits_come_from_the_row_then_the_table_and_name_the_job(tmp_path):
    from argparse import Namespace

    path = write(tmp_path / "t.yaml", "student: s\nteacher: t\nseeds: 1\ncolumns: {t: T}\nrl_split: k5\n"
                                      "eval: {tasks: x}\nrows: [base, grpo, {method: rkl, rl_split: k4}]\n")
    table = table_config.load_table("lab", "t", path)
    jobs = planning.plan_runs(table, Namespace(seeds=None, preset="controlled")).jobs
    assert [(j.method, j.rl_split) for j in jobs] == [("base", "k5"), ("grpo", "k5"), ("rkl", "k4")]
    assert [j.name for j in jobs] == ["base-s-s0", "grpo-s-t-k5-s0", "rkl-s-t-s0"]  # the default split is not named
    bad = write(tmp_path / "b.yaml", "student: s\nseeds: 1\ncolumns: {t: T}\nrl_split: k4+k4\nrows: [grpo]\n")
    with pytest.raises(table_config.UsageError, match="b.yaml: RL split 'k4\\+k4'"):
        table_config.load_table("lab", "b", bad)


def committed_tables():
    return [(profile, path.stem) for profile in table_config.PROFILES
            for path in sorted(table_config.table_path(profile, "x").parent.glob("*.yaml")) if not path.stem.startswith("_")]


@pytest.mark.parametrize("profile, name", committed_tables())
def test_every_committed_table_config_loads(profile, name):
    table = table_config.load_table(profile, name)
    assert all(row.method == "base" or row.method in METHODS for row in table.rows)
    if profile == "paper":
        assert all(row.config.exists() for row in table.rows if row.trained)


def committed_lab_manifests():
    """Manifests of the table and figure scripts, which share one command line (repro.options); the regime
    statistics (repro.regime) have options of their own and no table config to drift."""
    return sorted(path for path in (REPO / "results" / "lab").glob("*_manifest.json")
                  if json.loads(path.read_text())["script"] != "regime")


@pytest.mark.parametrize("manifest", committed_lab_manifests(), ids=lambda p: p.stem)
def test_every_committed_lab_result_has_the_seeds_its_command_makes_today(manifest):
    """Rerunning a committed result's command makes the same seeds: a config whose default seed count changed (one
    another script inherits) would leave that script's committed output stale."""
    made = json.loads(manifest.read_text())
    args = options.parse_args(made["script"], "-", made["command"].split()[3:])  # after "python -m repro.<script>"
    seeds = options.seeds_of(args, table_config.load_table(made["profile"], Path(made["config_file"]).stem))
    assert made["seeds"] == seeds, f"{manifest.name} holds seeds {made['seeds']}; `{made['command']}` makes {seeds}"


@pytest.mark.parametrize("name", ["table1", "table2"])
def test_tables_1_and_2_have_tgpo_adv_beside_tgpo_reg_in_every_profile(name):
    for profile in table_config.PROFILES:
        methods = [row.method for row in table_config.load_table(profile, name).rows]
        assert methods.index("tgpo_adv") == methods.index("tgpo") + 1, profile


def test_lab_guidance_schedules_reach_zero_at_two_thirds_of_training():
    """The lab's TGPO-Reg (lambda_0 0.05) and TGPO-Adv (the authors' 0.02) decay linearly to 0 at two thirds of
    max_steps, as the paper's schedule does; fails when max_steps changes without the decays."""
    for name in ("table1", "table2", "table3", "sweep"):
        table = table_config.load_table("lab", name)
        steps = table.trainer["max_steps"]
        for row in table.rows:
            if not (row.trained and METHODS[row.method].scheduled):
                continue
            t = {**table.trainer, **row.trainer}
            zero_at = next(k for k in range(1, 10 * steps) if guidance_weight(k, t["guidance_weight"], t["guidance_decay"]) == 0)
            assert abs(zero_at - 2 / 3 * steps) <= 1.5, (name, row.label, zero_at)
            expected = {"tgpo": 0.05, "tgpo_adv": 0.02}[row.method]
            assert t["guidance_weight"] == expected


def test_lab_tables_log_the_mechanism():
    trainer = table_config.load_table("lab", "table1").trainer
    assert trainer["log_guidance_share"] is True
    classes = trainer["agreement_token_classes"]
    import re

    from tgpo.lab.tokenizer import VOCAB
    real = [t for t in VOCAB if not t.startswith("<")]
    assert {t for t in real if re.fullmatch(classes["content"], t)} == set("0123456789")
    assert all(re.fullmatch(classes["style"], t) for t in real if t not in set("0123456789"))


def test_outputs_of_other_presets_and_seed_counts_get_their_own_names():
    table = table_config.load_table("lab", "table1")

    def stem(profile="lab", preset=None, seeds=None):
        return options.output_stem("table1", Namespace(profile=profile, preset=preset or table_config.DEFAULT_PRESET[profile],
                                                    seeds=seeds), table)

    assert stem() == stem(seeds=table.seeds) == "table1"
    assert stem(preset="authors_final") == "table1_authors_final"
    assert stem(seeds=7) == "table1_7seeds"
    assert stem(preset="authors_early", seeds=5) == "table1_authors_early_5seeds"
    assert stem(profile="paper", preset="authors_final") == "table1"


def test_another_config_is_read_and_names_the_outputs(tmp_path, monkeypatch):
    from repro import session

    write(tmp_path / "lab" / "table1.yaml", "student: s\nseeds: 1\ncolumns: {t: T}\neval: {tasks: x}\nrows: [grpo]\n")
    write(tmp_path / "lab" / "table1_k5.yaml", "base: table1.yaml\nseeds: 3\nrl_split: k5\n")
    monkeypatch.setattr(table_config, "CONFIGS", tmp_path)
    started = session.start("table1", "doc", ["--config", "table1_k5", "--dry-run"], (".md",))
    assert started == 0  # the plan was printed: its jobs below
    args = options.parse_args("table1", "doc", ["--config", "table1_k5", "--seeds", "2"])
    table = table_config.load_table("lab", options.config_name(args, "table1"))
    assert table.rl_split == "k5" and options.output_stem(options.config_name(args, "table1"), args, table) == "table1_k5_2seeds"
    with pytest.raises(table_config.UsageError, match="no lab config for nosuch"):
        session.start("table1", "doc", ["--config", "nosuch", "--dry-run"], (".md",))
    with pytest.raises(table_config.UsageError, match="unrecognized arguments: --config"):
        options.parse_args("figure4", "doc", ["--config", "x"], config=False)


# ------------------------------------------------------------------------------------------ scripts
def run_script(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_paper_profile_without_gpus_stops_with_one_line(tmp_path):
    result = run_script("repro.table1", "--profile", "paper", "--output-dir", str(tmp_path))
    assert result.returncode == 2
    assert "needs CUDA GPUs" in result.stderr and "--dry-run" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_paper_profile_dry_run_plans_every_row_with_its_preset():
    result = run_script("repro.table1", "--profile", "paper", "--dry-run", "--preset", "controlled")
    assert result.returncode == 0, result.stderr[-2000:]
    for method in ("grpo", "luffy", "rkl", "kdrl", "kdrl_authors", "tgpo", "tgpo_adv"):
        assert f"7b_cross_{method}.yaml --preset controlled" in result.stdout
        assert f"runs/paper/7b_cross_{method}-controlled" in result.stdout  # its own folder: not the default run's
    assert result.stdout.count("tgpo eval --model") == 8


def test_audit_lists_what_differs_between_the_presets(tmp_path):
    from repro import audit

    assert options.cli(audit.main, ["--output-dir", str(tmp_path)]) == 0
    authors_part, presets_part = (tmp_path / "audit.md").read_text().split("# Presets audit")
    rows = [line for line in presets_part.splitlines() if line.startswith("| ")]
    assert any("GRPO" in r and "scale_rewards" in r and "`none`" in r and "`group`" in r for r in rows)
    assert not any(r.split("|")[1].strip() in ("TGPO-Reg", "TGPO-Adv") for r in rows)  # same in both presets
    rkl = [r for r in rows if r.split("|")[1].strip() == "RKL"]
    assert rkl and all("reads no outcome reward" in r for r in rkl)  # its advantage comes from the teacher alone
    assert not any("reads no outcome reward" in r for r in rows if r.split("|")[1].strip() == "GRPO")


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def test_audit_sets_every_authors_final_setting_against_the_authors_launcher():
    from repro import audit

    frame = audit.authors_frame()
    assert not frame.status.str.contains("MISMATCH").any()  # every setting matches or states its departure
    assert frame.status.str.startswith(("match", "departure: ", "no effect: ")).all()
    assert frame["where"].str.match(r"`[\w./-]+:[\d/]+`").all()  # file:line of the authors' code

    def row(method, setting):
        found = frame[(frame.setting == setting) & frame.method.str.contains(method, regex=False)]
        assert len(found) == 1, (method, setting)
        return found.iloc[0]

    luffy = row("LUFFY", "aggregation")  # their final launcher: loss_remove_token_mean=False, a token mean
    assert (luffy.authors, luffy.suite, luffy.status) == ("token mean", "token mean", "match")
    assert "config/tasks.sh:70" in luffy["where"]
    assert row("GRPO", "aggregation").suite == "token sum / padded length"
    for setting, value in (("optimizer", "torch AdamW"), ("AdamW weight decay", "0.01"), ("learning rate", "1e-06"), ("gradient clipping", "1.0"),
                           ("AdamW betas", "(0.9, 0.999)"), ("AdamW epsilon", "1e-08")):
        assert (row("every method", setting).suite, row("every method", setting).status) == (value, "match")
    assert row("every method", "lr schedule").suite == "constant, no warmup"
    assert row("GRPO", "entropy bonus vs PG").status.startswith("departure")


@pytest.mark.slow
def test_every_script_runs_its_smoke_profile(tmp_path):
    """``reproduce_all --profile smoke`` and the recipe probe: every table and figure from real (tiny) training and
    evaluation; a rerun reuses every run."""
    out, env = tmp_path / "results", {"TGPO_RUNS_DIR": str(tmp_path / "runs")}
    result = run_script("repro.reproduce_all", "--profile", "smoke", "--output-dir", str(out), env=env, timeout=900)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    for name in ("table1", "table2", "table3"):
        assert (out / f"{name}.md").exists() and (out / f"{name}.csv").exists()
        manifest = json.loads((out / f"{name}_manifest.json").read_text())
        assert manifest["profile"] == "smoke" and manifest["preset"] == "controlled" and manifest["git_sha"]
        assert manifest["versions"]["trl"]
        trained = [r for r in manifest["rows"].values() if r["method"] != "base"]
        assert all(r["preset"] == "controlled" and r["trainer"]["scale_rewards"] == "group" for r in trained)
        assert all(run["key"] for r in manifest["rows"].values() for run in r["runs"])
    for png in ("table1_curves.png", "figure2.png", "figure4.png", "figure6.png", "figure5.png", "sweep.png"):
        assert (out / png).stat().st_size > 10_000, png
    assert "scale_rewards" in (out / "audit.md").read_text()
    rows = pd.read_csv(out / "table1.csv")
    assert list(rows.row) == ["Base student"] + [spec.label for spec in METHODS.values()]  # the registry's order
    assert rows["ID (k=4) mean"].between(0, 100).all() and rows.loc[rows.row == "GRPO", "Δ In-dist. avg"].item() == 0
    runs = json.loads((out / "table1_runs.json").read_text())
    assert all(len(r["problems"]["tgpo_lab_id"]) == 16 for r in runs)  # per-problem correctness is kept
    assert all(r["scores"]["tgpo_lab_id"] == pytest.approx(sum(r["problems"]["tgpo_lab_id"]) / 16) for r in runs)
    trained = [r for r in runs if r["method"] != "base"]
    assert trained and all(len(r["curves"]) == 2 for r in trained)  # two logged steps each
    guided = [r for r in trained if r["method"] == "tgpo"]
    assert all("guidance/grad_share" in r["curves"][0] and "teacher/argmax_agreement/content" in r["curves"][0]
               for r in guided)
    assert "Paired difference from TGPO-Reg (0 at 2/3 (paper))" in (out / "figure5.md").read_text()
    sweep = pd.read_csv(out / "sweep.csv")
    assert set(sweep.knob) == {0.0, 0.9}
    paired = pd.read_csv(out / "sweep_paired.csv")  # method − GRPO per knob: every method but GRPO at every knob
    assert set(zip(paired.method, paired.knob)) == {(m, k) for m in ("rkl", "tgpo") for k in (0.0, 0.9)}

    again = run_script("repro.table1", "--profile", "smoke", "--output-dir", str(out), env=env)
    assert again.returncode == 0 and "8 of 8 runs reused" in again.stdout, again.stdout[-2000:]
    assert (out / "previous").is_dir()  # the earlier table was archived, not overwritten

    probe = run_script("repro.recipe_probe", "--profile", "smoke", "--output-dir", str(out), env=env)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert "4 of 4 runs reused" in probe.stdout  # its candidates are the smoke GRPO runs of Tables 1 and 2
    frame = pd.read_csv(out / "recipe_probe.csv")
    assert {"Base student (student)", "Base student (student_small)", "student-4x4-2", "small-4x4-2"} == set(frame.row)
    assert frame["gain In-dist. avg"].notna().sum() == 2


def test_presets_shift_pairs_the_committed_preset_runs(tmp_path):
    """TGPO-Reg and TGPO-Adv resolve to the same settings under both presets (the presets differ only in the
    baselines' normalisation), and RKL's only difference, ``scale_rewards``, acts on an outcome advantage that RKL does
    not use; so their runs under the two presets are identical (training is deterministic given the seed): a shift of
    exactly 0 by seed.
    When the two committed tables were made by other code or on other kernels (their run keys' code part or their
    manifests' pinned ISA differ), the runs cannot be identical; their shifts must then be noise: intervals that
    contain 0."""
    from repro import presets_shift

    assert presets_shift.main(["--output-dir", str(tmp_path)]) == 0
    frame = pd.read_csv(tmp_path / "table1_presets_shift.csv", index_col="row")
    made = [json.loads((REPO / "results" / "lab" / f"{name}_manifest.json").read_text())
            for name in ("table1_6seeds", "table1_authors_final_6seeds")]
    code = [{run["key"].split("/", 1)[1] for run in m["rows"]["TGPO-Reg"]["runs"]} for m in made]
    kernels = [m.get("machine", {}).get("job_kernels_isa") for m in made]
    same_arithmetic = code[0] == code[1] and kernels[0] == kernels[1] is not None
    for row in ("TGPO-Reg", "TGPO-Adv", "RKL"):
        shift, half_width = frame.loc[row, "Δ In-dist. avg"], frame.loc[row, "Δ In-dist. avg ci"]
        if same_arithmetic:
            assert shift == 0 and half_width == 0, row
        else:
            assert abs(shift) <= half_width, (row, shift, half_width)
    assert frame.loc["GRPO", "Δ In-dist. avg"] != 0  # the authors' GRPO normalisation does move it
    assert frame.loc["GRPO", "n_seeds"] == 6


@pytest.mark.parametrize("profile", table_config.PROFILES)
def test_the_main_jobs_table_plans_in_every_profile(profile, capsys):
    """`nox -s reproduce_table1 -- --profile P` runs `python -m repro.table1 --config table1_core --profile P`: each
    profile has the core table, with 2 seeds in the lab (the issue-20 budget's lower bound)."""
    from repro import options, table1

    assert options.cli(table1.main, ["--config", "table1_core", "--profile", profile, "--dry-run"]) == 0
    planned = capsys.readouterr().out
    rows = set(re.findall(r"(?:=== |row=')(.+?)(?: \(seed \d|')", planned))  # paper and lab plan headings
    assert {"GRPO", "RKL", "KDRL (k2)", "TGPO-Reg"} <= rows and not rows & {"LUFFY", "TGPO-Adv"}, rows
    if profile == "lab":
        assert "-s1:" in planned and "-s2:" not in planned
