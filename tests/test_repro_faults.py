"""Faults on the reproduction side: a stale run cache, bad seeds and workers, bad configs and missing models — each
gives one line and exit code 2 before any earlier result is archived, or (the cache) reruns what changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from repro import lab_runner, options, paths, planning, run_cache, table1, table_config

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ bad input
@pytest.fixture(autouse=True)
def scratch_runs(tmp_path, monkeypatch):
    """Runs and their cache in a temporary folder: a test that wrongly got as far as training would not touch runs/."""
    monkeypatch.setenv("TGPO_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture
def no_training(monkeypatch):
    """Bad input must stop before any run: running one fails the test at once."""

    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached the runs")

    monkeypatch.setattr(planning, "run_plan", refuse)


@pytest.fixture
def earlier_results(tmp_path):
    """An output folder holding an earlier Table 1 (which a refused run must leave where it is)."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "table1.md").write_text("earlier")
    return out


def run_table1(argv, out, capsys):
    rc = options.cli(table1.main, ["--profile", "smoke", *argv, "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    return rc, err


def assert_untouched(out: Path):
    assert (out / "table1.md").read_text() == "earlier" and not (out / "previous").exists()


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--seeds: expected a whole number >= 1, got 0"),
    (["--seeds", "-1"], "--seeds: expected a whole number >= 1, got -1"),
    (["--seeds", "two"], "--seeds: expected a whole number >= 1, got 'two'"),
    (["--workers", "0"], "--workers: expected a whole number >= 1, got 0"),
    (["--seeds", "99999999999"], "--seeds: expected at most 100 seeds (each seed trains every row once), got 99999999999"),
    (["--preset", "fastest"], "--preset: invalid choice"),
    (["--profile", "huge"], "--profile: invalid choice"),
])
def test_bad_arguments_stop_with_one_line_before_anything_is_archived(earlier_results, capsys, no_training, argv,
                                                                     message):
    rc, err = run_table1(argv, earlier_results, capsys)
    assert rc == 2 and message in err and len(err.splitlines()) == 1
    assert_untouched(earlier_results)


def test_bad_seeds_from_the_command_line_exit_2_with_one_line(earlier_results):
    result = subprocess.run([sys.executable, "-m", "repro.table1", "--seeds", "0", "--output-dir", str(earlier_results)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip() == "table1: error: argument --seeds: expected a whole number >= 1, got 0"
    assert_untouched(earlier_results)


@pytest.fixture
def lab_configs(tmp_path, monkeypatch):
    """A copy of the committed configs the test may break."""
    import shutil

    configs = tmp_path / "configs"
    shutil.copytree(paths.CONFIGS, configs)
    monkeypatch.setattr(table_config, "CONFIGS", configs)
    return configs


@pytest.mark.parametrize("edit, message", [
    (("lab/table1.yaml", "rows: [base, rkl]", "rows: [base, rkl, nosuch]"), "method 'nosuch'"),
    (("smoke/_smoke.yaml", "seeds: 1", "seeds: 0"), "seeds=0"),
    (("lab/table1.yaml", "rows: [base, rkl]", "rows: [base, {method: tgpo, trainer: {guidance_weight: -0.05}}]"),
     "guidance_weight=-0.05"),
    (("lab/table1.yaml", "rows: [base, rkl]", "rows: [base, {method: grpo, trainer: {learning_rate: fast}}]"),
     "learning_rate"),
    (("lab/table1.yaml", "teacher: teacher_cross", "teacher: teacher_nosuch"), "tgpo lab build --only teacher_nosuch"),
])
def test_bad_configs_stop_with_one_line_before_anything_is_archived(lab_configs, earlier_results, capsys, no_training,
                                                                     edit, message):
    lab = lab_configs / "lab" / "table1.yaml"  # the smoke config lays its settings over this one
    text = lab.read_text()
    start, end = text.index("rows:"), text.index("eval:")
    lab.write_text(text[:start] + "rows: [base, rkl]\n" + text[end:])  # RKL reads the teacher
    path = lab_configs / edit[0]
    assert edit[1] in path.read_text()
    path.write_text(path.read_text().replace(edit[1], edit[2]))
    rc, err = run_table1([], earlier_results, capsys)
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err
    assert_untouched(earlier_results)


def test_a_lab_model_that_is_not_built_stops_before_anything_is_archived(earlier_results, capsys, tmp_path, monkeypatch,
                                                                       no_training):
    monkeypatch.setenv("TGPO_LAB_MODELS", str(tmp_path / "no_models"))
    rc, err = run_table1(["--profile", "smoke"], earlier_results, capsys)
    assert rc == 2 and "tgpo lab build --only student" in err and len(err.splitlines()) == 1
    assert_untouched(earlier_results)


def test_figures_refuse_the_paper_profile_with_one_line(capsys):
    from repro import figure2

    assert options.cli(figure2.main, ["--profile", "paper"]) == 2
    assert "--profile: invalid choice: 'paper'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the run cache
def make_job(tmp_path: Path, name: str, seed: int = 0, **changes) -> lab_runner.LabJob:
    model = tmp_path / "models" / "student"
    if not model.exists():
        model.mkdir(parents=True)
        (model / "model.safetensors").write_bytes(b"weights v1")
        (model / "build_info.json").write_text("{}")
    fields = dict(name=name, row="grpo", label="GRPO", variant=None, method="grpo", seed=seed, student=str(model),
                  teacher=None, preset="controlled", trainer={"max_steps": 2}, train_size=8, data_seed=0,
                  eval_tasks="tgpo_lab", eval_limit=4, eval_batch_size=4, work_dir=str(tmp_path / "jobs" / name))
    return lab_runner.LabJob(**{**fields, **changes})


@pytest.fixture
def fake_runs(monkeypatch, tmp_path):
    """Lab runs replaced by a counter (no training), and the hashed code replaced by one temporary file."""
    source = tmp_path / "pkg" / "scoring.py"
    source.parent.mkdir()
    source.write_text("def grade(): return True\n")
    monkeypatch.setattr(run_cache, "source_files", lambda: {"tgpo/scoring.py": source})
    ran = []

    def fake_pool(jobs, workers, desc, done, keys, cache):
        for job in jobs:
            ran.append(job.name)
            done[keys[job.name]] = {"name": job.name, "method": job.method, "seed": job.seed,
                                    "scores": {"tgpo_lab_id": 0.5}, "problems": {}, "curves": []}
            cache.store(keys[job.name], done[keys[job.name]])

    monkeypatch.setattr(lab_runner, "_run_pool", fake_pool)
    return source, ran


def run(jobs, tmp_path, capsys, **kwargs):
    records = lab_runner.run_jobs(jobs, tmp_path / "cache", desc="t", **kwargs)
    return records, capsys.readouterr().out


def test_cached_runs_are_reused_only_with_the_same_code(tmp_path, capsys, fake_runs):
    source, ran = fake_runs
    jobs = [make_job(tmp_path, "a", seed=0), make_job(tmp_path, "b", seed=1)]
    _, log = run(jobs, tmp_path, capsys)
    assert ran == ["a", "b"] and "0 of 2 runs reused" in log and "no cached run with these settings (2)" in log
    records, log = run(jobs, tmp_path, capsys)
    assert ran == ["a", "b"] and "2 of 2 runs reused (same code, models, config, seed)" in log
    assert all(r["cache"]["reused"] for r in records)

    source.write_text("def grade(): return False\n")  # the grader changed: no earlier score may survive
    records, log = run(jobs, tmp_path, capsys)
    assert ran == ["a", "b", "a", "b"] and "0 of 2 runs reused; 2 to run: code changed since the cached runs (2)" in log
    assert not any(r["cache"]["reused"] for r in records)
    assert records[0]["cache"]["key"].split("/")[1].startswith(run_cache.code_hash({"tgpo/scoring.py": source}))


def test_cached_runs_are_not_reused_after_the_model_files_change(tmp_path, capsys, fake_runs):
    _, ran = fake_runs
    jobs = [make_job(tmp_path, "a")]
    run(jobs, tmp_path, capsys)
    (tmp_path / "models" / "student" / "build_info.json").write_text('{"metrics": "re-measured"}')
    _, log = run(jobs, tmp_path, capsys)
    assert "1 of 1 runs reused" in log  # build metadata is not the model
    (tmp_path / "models" / "student" / "model.safetensors").write_bytes(b"weights v2")
    _, log = run(jobs, tmp_path, capsys)
    assert ran == ["a", "a"] and "model files changed since the cached runs (1)" in log


def test_the_config_preset_and_seed_are_part_of_the_key(tmp_path, capsys, fake_runs):
    _, ran = fake_runs
    run([make_job(tmp_path, "a")], tmp_path, capsys)
    for changed in ({"seed": 1}, {"preset": "authors_final"}, {"trainer": {"max_steps": 3}}, {"eval_limit": 8}):
        ran.clear()
        run([make_job(tmp_path, "a", **changed)], tmp_path, capsys)
        assert ran == ["a"], changed
    ran.clear()
    run([make_job(tmp_path, "renamed", label="Another label")], tmp_path, capsys)  # names are not settings
    assert ran == []


def test_no_cache_reruns_and_identical_jobs_run_once(tmp_path, capsys, fake_runs):
    _, ran = fake_runs
    jobs = [make_job(tmp_path, "a"), make_job(tmp_path, "b", teacher="any_teacher")]  # GRPO reads no teacher
    _, log = run(jobs, tmp_path, capsys)
    assert ran == ["a"] and "1 identical runs in this plan shared" in log
    records, log = run(jobs, tmp_path, capsys, use_cache=False)
    assert ran == ["a", "a"] and "cache not used (--no-cache)" in log
    assert [r["name"] for r in records] == ["a", "b"] and records[1]["teacher"] == "any_teacher"


def report_environment(job: lab_runner.LabJob) -> dict:
    """Stands in for a lab job in the spawned workers (importable there by name): what its process was given."""
    return {"name": job.name, "scores": {}, "env": {name: os.environ.get(name) for name in lab_runner.JOB_ENV}}


def test_job_processes_get_the_job_environment_and_the_caller_keeps_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(lab_runner, "_run_logged", report_environment)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    jobs = [make_job(tmp_path, "a"), make_job(tmp_path, "b", seed=1)]
    cache = run_cache.RunCache(tmp_path / "cache")
    keys = {job.name: cache.key(lab_runner.job_settings(job), lab_runner.job_models(job)) for job in jobs}
    done: dict = {}
    lab_runner._run_pool(jobs, 2, "t", done, keys, cache)
    assert [done[keys[name]]["env"] for name in ("a", "b")] == [lab_runner.JOB_ENV] * 2
    assert lab_runner.JOB_ENV["OMP_NUM_THREADS"] == "1" and "MALLOC_MMAP_THRESHOLD_" in lab_runner.JOB_ENV
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MALLOC_MMAP_THRESHOLD_" not in os.environ


def test_the_hashed_sources_cover_the_package_the_lab_tasks_and_the_runner():
    names = run_cache.source_files()
    for name in ("tgpo/trainer.py", "tgpo/objectives.py", "tgpo/grading/verdicts.py", "tgpo/lab/world.py",
                 "tgpo/resources/presets.yaml", "repro/lab_runner.py"):
        assert name in names, name
    assert any(n.endswith("lab/utils.py") for n in names) and any(n.endswith("lab/tgpo_lab_id.yaml") for n in names)
    assert not any("/zoo/" in n for n in names)  # model bytes are hashed per job, not as code


def test_an_output_dir_that_is_a_file_stops_with_one_line(tmp_path, capsys, monkeypatch):
    from repro import audit

    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    assert options.cli(audit.main, ["--output-dir", str(target / "lab")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file, not a folder" in err and len(err.splitlines()) == 1 and target.read_text() == "not a folder"
