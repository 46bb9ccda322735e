"""Faults on the reproduction side: a stale run cache, bad seeds and workers, bad configs and missing models — each
gives one line and exit code 2 before any earlier result is archived, or (the cache) reruns what changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repro import lab_runner, options, paths, planning, run_cache, run_lock, session, table1, table_config

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
                  teacher=None, preset="controlled", trainer={"max_steps": 2}, train_size=8, data_seed=0, rl_split="k4",
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


def test_cached_runs_are_not_reused_under_other_library_versions(tmp_path, capsys, fake_runs, monkeypatch):
    _, ran = fake_runs
    jobs = [make_job(tmp_path, "a")]
    installed = run_cache.library_versions()
    assert set(installed) == {"torch", "transformers", "trl", "accelerate", "math-verify"}
    run(jobs, tmp_path, capsys)
    monkeypatch.setattr(run_cache, "library_versions", lambda: {**installed, "transformers": "5.25.0"})
    records, log = run(jobs, tmp_path, capsys)
    assert ran == ["a", "a"] and "library versions changed since the cached runs (1)" in log
    monkeypatch.setattr(run_cache, "library_versions", lambda: installed)
    _, log = run(jobs, tmp_path, capsys)
    assert ran == ["a", "a"] and "1 of 1 runs reused" in log


def test_the_config_preset_and_seed_are_part_of_the_key(tmp_path, capsys, fake_runs):
    _, ran = fake_runs
    run([make_job(tmp_path, "a")], tmp_path, capsys)
    for changed in ({"seed": 1}, {"preset": "authors_final"}, {"trainer": {"max_steps": 3}}, {"eval_limit": 8},
                    {"rl_split": "k5"}):
        ran.clear()
        run([make_job(tmp_path, "a", **changed)], tmp_path, capsys)
        assert ran == ["a"], changed
    ran.clear()
    run([make_job(tmp_path, "renamed", label="Another label")], tmp_path, capsys)  # names are not settings
    assert ran == []


def test_the_default_rl_split_leaves_keys_of_runs_made_before_it_unchanged(tmp_path):
    """Runs cached before jobs named their RL split trained on k4: their key must not change with the field."""
    settings = lab_runner.job_settings(make_job(tmp_path, "a"))
    assert "rl_split" not in settings
    assert lab_runner.job_settings(make_job(tmp_path, "a", rl_split="k5"))["rl_split"] == "k5"


def test_a_job_trains_on_its_rl_split(tmp_path):
    from tgpo.lab import world

    for split, ks in (("k4", {4}), ("k5", {5}), ("k4+k5", {4, 5})):
        path = lab_runner._write_train_jsonl(tmp_path / f"{split}.jsonl", make_job(tmp_path, "a", rl_split=split,
                                                                                   train_size=40))
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == 40 and {len(r["prompt"].rstrip("=").split("+")) for r in rows} == ks, split
    k4 = [json.loads(line)["prompt"] for line in (tmp_path / "k4.jsonl").read_text().splitlines()]
    assert k4 == [r["prompt"] for r in world.make_split("rl_train", n=40, seed=0)]  # what jobs trained on before


def test_no_cache_reruns_and_identical_jobs_run_once(tmp_path, capsys, fake_runs):
    _, ran = fake_runs
    jobs = [make_job(tmp_path, "a"), make_job(tmp_path, "b", teacher="any_teacher")]  # GRPO reads no teacher
    _, log = run(jobs, tmp_path, capsys)
    assert ran == ["a"] and "1 identical runs in this plan shared" in log
    records, log = run(jobs, tmp_path, capsys, use_cache=False)
    assert ran == ["a", "a"] and "cache not used (--no-cache)" in log
    assert [r["name"] for r in records] == ["a", "b"] and records[1]["teacher"] == "any_teacher"


@pytest.mark.parametrize("content, problem", [("{not json", "Expecting property name"),
                                              ('{"name": "a", "method": "grpo"}', "no 'seed'"),
                                              ("[1, 2]", "not a JSON object"), (b"\xff\xfe", "utf-8")])
def test_a_corrupt_cache_record_is_a_miss_moved_aside_with_one_line(tmp_path, capsys, fake_runs, content, problem):
    _, ran = fake_runs
    jobs = [make_job(tmp_path, "a"), make_job(tmp_path, "b", seed=1)]
    run(jobs, tmp_path, capsys)
    cache = run_cache.RunCache(tmp_path / "cache")
    path = cache._path(cache.key(lab_runner.job_settings(jobs[0]), lab_runner.job_models(jobs[0])))
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    records = lab_runner.run_jobs(jobs, tmp_path / "cache", desc="t")
    err = capsys.readouterr().err.strip()
    assert ran == ["a", "b", "a"] and [r["cache"]["reused"] for r in records] == [False, True]
    assert len(err.splitlines()) == 1 and f"corrupt record {path}" in err and problem in err
    assert [p.name for p in path.parent.iterdir() if ".corrupt-" in p.name] == [err.split("moved to ")[1].split(";")[0]]
    assert run_cache.RunCache(tmp_path / "cache").load(cache.key(lab_runner.job_settings(jobs[0]),
                                                                 lab_runner.job_models(jobs[0])))["name"] == "a"


def test_a_corrupt_cache_record_is_reported_before_earlier_outputs_are_archived(earlier_results, tmp_path, capsys,
                                                                               monkeypatch):
    args = options.parse_args("table1", table1.__doc__, ["--profile", "smoke"])
    plan = planning.plan_runs(table_config.load_table("smoke", "table1"), args)
    cache = run_cache.RunCache(tmp_path / "runs" / "smoke" / "cache")
    path = cache._path(cache.key(lab_runner.job_settings(plan.jobs[-1]), lab_runner.job_models(plan.jobs[-1])))
    path.parent.mkdir(parents=True)
    path.write_text("{truncated")

    class Archived(Exception):
        pass

    def archive(out_dir, names):
        assert not path.exists() and "corrupt record" in capsys.readouterr().err  # already reported and moved
        raise Archived

    monkeypatch.setattr(session, "archive", archive)
    with pytest.raises(Archived):
        options.cli(table1.main, ["--profile", "smoke", "--output-dir", str(earlier_results)])


def test_a_script_names_the_libraries_whose_versions_differ_from_the_committed_results(earlier_results, tmp_path,
                                                                                   capsys, monkeypatch):
    import json

    from tgpo.provenance import package_versions

    installed = package_versions()
    committed = {**installed, "transformers": "5.0.0", "accelerate": "0.1.0", "tgpo": "0.0.1"}
    (tmp_path / "committed" / "smoke").mkdir(parents=True)
    manifest = tmp_path / "committed" / "smoke" / "table1_manifest.json"
    manifest.write_text(json.dumps({"versions": committed}))
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "committed")

    class Archived(Exception):
        pass

    def archive(out_dir, names):  # the note comes before anything is archived
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(manifest) in err, err
        assert f"transformers {installed['transformers']} (committed 5.0.0)" in err
        assert f"accelerate {installed['accelerate']} (committed 0.1.0)" in err
        assert "tgpo" not in err.split(": note: ")[1].split(";")[0].replace(str(manifest), "")
        raise Archived

    monkeypatch.setattr(session, "archive", archive)
    with pytest.raises(Archived):
        options.cli(table1.main, ["--profile", "smoke", "--output-dir", str(earlier_results)])
    manifest.write_text(json.dumps({"versions": {**installed, "tgpo": "0.0.1"}}))  # the same libraries: no note
    from repro import versions

    assert versions.note("table1", manifest) is None


@pytest.mark.parametrize("committed_cpu, here, differs", [("AMD EPYC", "Intel(R) Xeon(R) Processor", True),
                                                           ("AMD EPYC 7B13", "AMD EPYC", False),
                                                           ("Intel(R) Xeon(R) Platinum", "Intel(R) Core(TM) i7", False),
                                                           (None, "Intel(R) Xeon(R) Processor", False)])
def test_a_cpu_of_another_vendor_than_the_committed_results_is_named_in_the_note(tmp_path, committed_cpu, here,
                                                                                  differs):
    """MKL keeps the pinned AVX2 branch only on Intel CPUs: table1_core's trained runs made on an AMD EPYC and rerun on
    an Intel Xeon with the same lock and pin differ from step 1's gradient norm on (results/lab/README.md#time)."""
    from repro import versions
    from tgpo.provenance import package_versions

    manifest = tmp_path / "table1_manifest.json"
    installed = package_versions(("torch",))
    manifest.write_text(json.dumps({"versions": installed, "machine": {"cpu_model": committed_cpu}}))
    line = versions.note("table1", manifest, installed=installed, cpu_model=here)
    if not differs:
        assert line is None
        return
    assert len(line.splitlines()) == 1 and "the CPU vendor differs" in line and here in line and committed_cpu in line
    assert "library versions" not in line and "lock.txt" not in line  # the libraries agree


@pytest.mark.parametrize("contents", ["[1, 2]", '{"versions": [1], "machine": "AMD EPYC"}', "{not json"])
def test_a_malformed_committed_manifest_gives_no_note_and_is_read_once(tmp_path, monkeypatch, contents):
    """A manifest that is not the expected shape is no reason to stop a script; and the note reads it once for both
    comparisons (versions and CPU)."""
    from repro import versions

    manifest = tmp_path / "table1_manifest.json"
    manifest.write_text(contents)
    reads = []
    read_text = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: reads.append(self) or read_text(self, *a, **k))
    assert versions.note("table1", manifest, installed={}, cpu_model="Intel(R) Xeon(R) Processor") is None
    assert reads == [manifest]


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
    # torch's, MKL's and oneDNN's kernels pinned to one instruction set, so another x86-64 machine makes the same runs
    assert (lab_runner.JOB_ENV["ATEN_CPU_CAPABILITY"], lab_runner.JOB_ENV["MKL_CBWR"],
            lab_runner.JOB_ENV["ONEDNN_MAX_CPU_ISA"]) == ("avx2", "AVX2", "AVX2")
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
    assert f"({target} is a file)" in err and len(err.splitlines()) == 1 and target.read_text() == "not a folder"


# ------------------------------------------------------------------------------------------ processes and locks
def sleep_in_job(job: lab_runner.LabJob) -> dict:
    """Stands in for a long lab job in a spawned worker: says its pid, then sleeps."""
    import time

    Path(job.work_dir).parent.mkdir(parents=True, exist_ok=True)
    Path(job.work_dir).with_suffix(".pid").write_text(str(os.getpid()))
    time.sleep(120)
    return {"name": job.name}


def warn_in_job(job: lab_runner.LabJob) -> dict:
    """Stands in for a lab job that meets a library warning (transformers' logging) and a Python warning."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.get_logger("transformers.tgpo_test").warning(f"library warning of {job.name}")
    warnings.warn(f"python warning of {job.name}", stacklevel=1)
    print(f"print of {job.name}")
    return {"name": job.name}


PARENT = """
import sys
from pathlib import Path
import test_repro_faults as t
from repro import lab_runner, run_cache
root = Path(sys.argv[1])
jobs = [t.make_job(root, "a")]
lab_runner._run_logged = t.sleep_in_job
cache = run_cache.RunCache(root / "cache")
keys = {job.name: cache.key(lab_runner.job_settings(job), lab_runner.job_models(job)) for job in jobs}
lab_runner._run_pool(jobs, 1, "t", {}, keys, cache)
"""


def test_job_processes_end_when_the_script_is_killed(tmp_path):
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], cwd=REPO, env=env)
    pid_file = tmp_path / "jobs" / "a.pid"
    try:
        deadline = time.monotonic() + 180
        while not pid_file.exists() and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
        assert pid_file.exists(), "the job never started"
        time.sleep(0.2)
        job = int(pid_file.read_text())
    finally:
        parent.kill()  # SIGKILL: no cleanup code of the script runs
        parent.wait()
    deadline = time.monotonic() + 15
    while run_lock.pid_alive(job) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = run_lock.pid_alive(job)
    if alive:
        os.kill(job, signal.SIGKILL)
    assert not alive, "the job process outlived its script"


def test_each_job_log_holds_its_own_warnings_also_after_a_workers_first_job(tmp_path):
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    jobs = [make_job(tmp_path, name, seed=i) for i, name in enumerate(["a", "b", "c"])]
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:  # one worker: jobs in turn
        for job in jobs:
            pool.submit(lab_runner._run_logged, job, warn_in_job).result()
    for job in jobs:
        log = Path(job.work_dir).with_name(f"{job.name}.log").read_text()
        for what in ("library warning", "python warning", "print"):
            assert f"{what} of {job.name}" in log, (job.name, log)
        assert "Logging error" not in log and "closed file" not in log, log


@pytest.fixture
def other_run():
    """The pid of a live process standing in for a first run."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("where, what", [("results", "results"), ("runs", "lab runs")])
def test_a_second_run_into_the_same_results_or_cache_is_refused_with_the_first_runs_pid(
        earlier_results, tmp_path, capsys, no_training, other_run, where, what):
    folder = earlier_results if where == "results" else tmp_path / "runs" / "smoke"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / run_lock.LOCK_NAME).write_text(f"{other_run}\n")
    rc, err = run_table1([], earlier_results, capsys)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"another run (pid {other_run}) is writing {what} into {folder}" in err
    assert_untouched(earlier_results)
    assert (folder / run_lock.LOCK_NAME).read_text().strip() == str(other_run)  # the first run's lock stays


def test_a_dead_runs_lock_is_taken_over_and_released(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = tmp_path / run_lock.LOCK_NAME
    lock.write_text(dead.stdout)
    with run_lock.hold(tmp_path, "results"):
        assert lock.read_text().strip() == str(os.getpid())
        with run_lock.hold(tmp_path, "results"):  # the same process again (reproduce_all): allowed
            pass
        assert lock.exists()
    assert not lock.exists()


def test_a_script_gives_its_locks_back_when_it_ends(earlier_results, tmp_path, capsys, no_training):
    with pytest.raises(AssertionError, match="bad input reached the runs"):  # got as far as running: locks taken
        run_table1([], earlier_results, capsys)
    assert not (earlier_results / run_lock.LOCK_NAME).exists()
    assert not (tmp_path / "runs" / "smoke" / run_lock.LOCK_NAME).exists()
