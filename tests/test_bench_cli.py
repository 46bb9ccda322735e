"""The ``python -m bench.*`` scripts follow the suite's rule for bad input: one line on stderr that names the input
(``python -m bench.X: error: ...``), exit code 2, before any model loads or anything is measured, and nothing written
to the output folder given (it stays as it was). Each case calls the script's ``main(argv)`` in this process; none loads a model."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from bench import grader, mathverify_compat, mkl_branch, mutants, trainer, trl_tests

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmarks"
NOWHERE = "/nonexistent/tgpo-bench-input"


@pytest.fixture
def out(tmp_path) -> Path:
    """An empty output folder; every refusal must leave it empty."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def _no_defaults_from_the_environment(monkeypatch):
    """The grader and the compatibility bench fall back on these variables: the cases say what they give."""
    monkeypatch.delenv("TGPO_BENCHMARK_DIR", raising=False)
    monkeypatch.delenv("TGPO_MV060_PYTHON", raising=False)


def assert_refused(capsys, module, argv: list[str], names: str, out: Path) -> str:
    """``module.main(argv)`` ends with exit code 2 and one line on stderr, from the script, naming ``names``;
    ``out`` is left as it was (empty, unless the case put files there). Returns the line."""
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    try:
        code = module.main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].strip(), err  # argparse's own error() adds a usage block before the line
    script = f"python -m bench.{module.__name__.split('.')[-1]}"
    assert lines[0].startswith(script) and ": error: " in lines[0], lines[0]  # a sub-command adds its name
    assert names in lines[0], lines[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    return lines[0]


def _executable(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


# ------------------------------------------------------------------------------------------------- trainer
@pytest.mark.parametrize("argv, names", [
    (["--rounds", "-1"], "--rounds"),  # was: a traceback after set-up (TGPOConfig.max_steps=0)
    (["--rounds", "0"], "--rounds"),  # was: 14 s of training, then StatisticsError, and steps.json left behind
    (["--rounds", "two"], "--rounds"),
    (["--head-hidden", "0"], "--head-hidden"),  # the three head options used to start training
    (["--head-positions", "-1"], "--head-positions"),
    (["--head-rounds", "0"], "--head-rounds"),
    (["--reward", "free"], "--reward"),
    (["--no-such-option"], "--no-such-option"),
], ids=["rounds-negative", "rounds-zero", "rounds-text", "head-hidden", "head-positions", "head-rounds", "reward",
        "unknown-option"])
def test_trainer_refuses_a_bad_count_before_training(capsys, out, argv, names):
    """Every count and size of the trainer bench is checked when parsed: no training starts on a value it cannot
    finish with."""
    assert_refused(capsys, trainer, [*argv, "--output-dir", str(out)], names, out)


@pytest.mark.parametrize("present", [(), ("bench.csv",)], ids=["empty-folder", "no-manifest"])
def test_trainer_report_only_names_the_missing_file(capsys, out, present):
    """``--report-only`` on a folder without a measuring run's files names the file it lacks, not a traceback."""
    for name in present:
        (out / name).write_text("section,name,value\n")
    missing = "manifest.json" if present else "bench.csv"
    assert_refused(capsys, trainer, ["--report-only", "--output-dir", str(out)], str(out / missing), out)


@pytest.mark.parametrize("module, argv", [
    (trainer, []),
    (mkl_branch, []),
    (grader, ["--benchmark-dir", str(FIXTURES)]),
    (mathverify_compat, ["--reference-python", sys.executable]),
], ids=["trainer", "mkl_branch", "grader", "mathverify_compat"])
def test_an_output_dir_that_is_a_file_is_refused_before_measuring(capsys, out, module, argv):
    """An ``--output-dir`` that cannot be a folder is refused when parsed, not at the first write after minutes of
    measuring."""
    blocker = out.parent / "a-file"
    blocker.write_text("")
    assert_refused(capsys, module, [*argv, "--output-dir", str(blocker / "sub")],
                   f"--output-dir: '{blocker / 'sub'}' is not a folder ({blocker} is a file)", out)


def test_trainer_refuses_missing_lab_models_before_loading_any(capsys, out, monkeypatch, tmp_path):
    """The contenders' lab models are checked before any trainer is built."""
    monkeypatch.setenv("TGPO_LAB_MODELS", str(tmp_path / "no-models"))
    assert_refused(capsys, trainer, ["--quick", "--output-dir", str(out)], "lab model 'student' is not built", out)


# -------------------------------------------------------------------------------------- mathverify_compat
def test_mathverify_compat_refuses_a_bad_case_count_at_parse_time(capsys, out):
    """``--cases -1`` with a real interpreter used to end in ZeroDivisionError after writing mathverify_compat.csv."""
    assert_refused(capsys, mathverify_compat, ["--reference-python", sys.executable, "--cases", "-1",
                                               "--output-dir", str(out)], "--cases", out)


@pytest.mark.parametrize("argv, names", [
    (["--reference-python", NOWHERE], f"--reference-python {NOWHERE}: not an executable"),
    (["--seed", "1.5"], "--seed"),
    ([], "give --reference-python"),
], ids=["missing-interpreter", "seed-not-int", "no-interpreter"])
def test_mathverify_compat_names_the_interpreter_given(capsys, out, argv, names):
    """A bad ``--reference-python`` is named as given, not reported as if none was given."""
    assert_refused(capsys, mathverify_compat, [*argv, "--cases", "5", "--output-dir", str(out)], names, out)


def test_mathverify_compat_names_a_bad_interpreter_from_the_environment(capsys, out, monkeypatch, tmp_path):
    """The same from ``TGPO_MV060_PYTHON``: a file that is not executable is named with the variable."""
    (tmp_path / "python").write_text("")
    monkeypatch.setenv("TGPO_MV060_PYTHON", str(tmp_path / "python"))
    assert_refused(capsys, mathverify_compat, ["--output-dir", str(out)],
                   f"TGPO_MV060_PYTHON {tmp_path / 'python'}: not an executable", out)


def test_mathverify_compat_a_failing_reference_interpreter_is_one_line_and_exit_2(capsys, out, tmp_path):
    """An interpreter that fails (no math-verify 0.6.0, say) ends the run with its last line, exit code 2 (it was
    exit code 1), before anything is graded here or written."""
    python = _executable(tmp_path / "python", "#!/bin/sh\necho 'No module named math_verify' >&2\nexit 3\n")
    line = assert_refused(capsys, mathverify_compat, ["--reference-python", python, "--cases", "3",
                                                      "--output-dir", str(out)], python, out)
    assert "No module named math_verify" in line


# -------------------------------------------------------------------------------------------------- grader
def test_grader_names_the_benchmark_dir_given(capsys, out):
    """A missing ``--benchmark-dir`` is named, not reported as 'set TGPO_BENCHMARK_DIR'."""
    assert_refused(capsys, grader, ["--benchmark-dir", NOWHERE, "--quick", "--output-dir", str(out)],
                   f"--benchmark-dir {NOWHERE}: not a folder", out)


def test_grader_names_a_bad_benchmark_dir_from_the_environment(capsys, out, monkeypatch):
    monkeypatch.setenv("TGPO_BENCHMARK_DIR", NOWHERE)
    assert_refused(capsys, grader, ["--quick", "--output-dir", str(out)], f"TGPO_BENCHMARK_DIR {NOWHERE}", out)


@pytest.mark.parametrize("files", [(), ("arc_challenge.jsonl",)], ids=["no-files", "choice-only"])
def test_grader_refuses_a_folder_without_math_benchmarks(capsys, out, tmp_path, files):
    """The throughput and agreement sets are drawn from math golds: without any, the grader used to fail with
    IndexError after grading the other sets."""
    data = tmp_path / "data"
    data.mkdir()
    for name in files:
        shutil.copy(FIXTURES / name, data / name)
    assert_refused(capsys, grader, ["--benchmark-dir", str(data), "--no-agreement", "--quick",
                                    "--output-dir", str(out)], f"--benchmark-dir {data}: no math benchmark rows", out)


def test_grader_names_a_malformed_benchmark_file(capsys, out, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "math500.jsonl").write_text("not json\n")
    assert_refused(capsys, grader, ["--benchmark-dir", str(data), "--no-agreement", "--quick",
                                    "--output-dir", str(out)], str(data / "math500.jsonl"), out)


@pytest.mark.parametrize("kind", ["missing", "not-oat"])
def test_grader_refuses_a_bad_oat_grader_before_grading(capsys, out, tmp_path, kind):
    """``--oat-grader`` is checked before any pair is graded: a missing file at parse time, a file that is not
    oat-llm's grader (no ``boxed_reward_fn``) when loaded."""
    path = tmp_path / "math_grader.py"
    if kind == "not-oat":
        path.write_text("x = 1\n")
    assert_refused(capsys, grader, ["--benchmark-dir", str(FIXTURES), "--quick", "--oat-grader", str(path),
                                    "--output-dir", str(out)], f"{path}", out)


# ---------------------------------------------------------------------------------------------- mkl_branch
@pytest.mark.parametrize("argv, names", [
    (["--rounds", "0"], "--rounds"),
    (["--passes", "-2"], "--passes"),
    (["--passes", "x"], "--passes"),
], ids=["rounds", "passes-negative", "passes-text"])
def test_mkl_branch_refuses_a_bad_count_in_one_line(capsys, out, argv, names):
    assert_refused(capsys, mkl_branch, [*argv, "--output-dir", str(out)], names, out)


def test_mkl_branch_a_failing_worker_is_one_line_and_exit_2(capsys, out, monkeypatch):
    """A branch's worker that dies without a word used to end in IndexError (or exit 1 with its last line)."""
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 139, "", ""))
    assert_refused(capsys, mkl_branch, ["--rounds", "1", "--passes", "1", "--output-dir", str(out)],
                   "the AVX2 worker failed: exit code 139", out)


# ------------------------------------------------------------------------------------------------- mutants
@pytest.fixture
def no_mutmut_results(monkeypatch, tmp_path) -> Path:
    """bench.mutants pointed at an empty repository root: no mutmut results, its report in the folder returned."""
    report = tmp_path / "out"
    report.mkdir()
    monkeypatch.setattr(mutants, "ROOT", tmp_path)
    monkeypatch.setattr(mutants, "WALL", tmp_path / "mutants" / "wall_times.json")
    monkeypatch.setattr(mutants, "OUT", report / "mutants.md")
    return report


@pytest.mark.parametrize("flag", ["--report-only", "--survivors"])
def test_mutants_without_results_does_not_overwrite_the_report(capsys, no_mutmut_results, flag):
    """Without mutmut's results the report used to be rewritten as '0 mutants' over the last real one."""
    assert_refused(capsys, mutants, [flag], f"{flag}: no mutmut results", no_mutmut_results)


@pytest.mark.parametrize("argv, names", [
    (["--survivors", "--part", "objectives"], "--part"),
    (["--report-only", "--survivors"], "--survivors"),
    (["--part", "everything"], "--part"),
], ids=["survivors-and-part", "report-and-survivors", "unknown-part"])
def test_mutants_refuses_options_that_contradict(capsys, no_mutmut_results, argv, names):
    """Each of ``--part``, ``--survivors``, ``--report-only`` names a different run; combined, all but one used to
    be ignored silently."""
    assert_refused(capsys, mutants, argv, names, no_mutmut_results)


# ----------------------------------------------------------------------------------------------- trl_tests
def _trl_tests_folder(tmp_path: Path, files=trl_tests.TRL_FILES) -> Path:
    folder = tmp_path / "trl-tests"
    folder.mkdir()
    for name in files:
        (folder / name).write_text("")
    return folder


def test_trl_tests_setup_refuses_with_exit_2(capsys, out, tmp_path):
    """``setup`` with a missing tests folder used to exit 1 (SystemExit with a string)."""
    assert_refused(capsys, trl_tests, ["setup", "--tests", NOWHERE, "--work", str(out)],
                   f"--tests {NOWHERE}: not a folder", out)


def test_trl_tests_setup_names_the_missing_trl_file(capsys, out, tmp_path):
    tests = _trl_tests_folder(tmp_path, files=trl_tests.TRL_FILES[:-1])
    assert_refused(capsys, trl_tests, ["setup", "--tests", str(tests), "--work", str(out)],
                   "test_grpo_trainer.py", out)


def test_trl_tests_setup_refuses_a_work_folder_in_the_repository(capsys, out, tmp_path):
    tests = _trl_tests_folder(tmp_path)
    work = ROOT / "results" / "no-such-trl-work"
    assert_refused(capsys, trl_tests, ["setup", "--tests", str(tests), "--work", str(work)], f"--work {work}", out)
    assert not work.exists()


def test_trl_tests_run_refuses_a_work_folder_not_set_up(capsys, out):
    assert_refused(capsys, trl_tests, ["run", "--work", str(out), "--trainer", "tgpo"], "conftest.py", out)


def test_trl_tests_report_names_the_missing_junit_file(capsys, out):
    """``report`` before the runs used to end in a FileNotFoundError traceback for junit-trl.xml."""
    assert_refused(capsys, trl_tests, ["report", "--work", NOWHERE, "--source", "x", "--out", str(out / "r.md")],
                   "junit-trl.xml", out)


def test_trl_tests_report_names_an_unreadable_junit_file(capsys, out, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "junit-trl.xml").write_text("<testsuite><testcase name='a'/></testsuite>")
    (work / "junit-tgpo.xml").write_text("<testsuite><testcase")  # a run stopped while writing it
    (work / "stand_ins.json").write_text("[]")
    assert_refused(capsys, trl_tests, ["report", "--work", str(work), "--source", "x", "--out", str(out / "r.md")],
                   "junit-tgpo.xml", out)


def test_trl_tests_report_refuses_an_out_it_cannot_write(capsys, out, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for name in ("junit-trl.xml", "junit-tgpo.xml"):
        (work / name).write_text("<testsuite/>")
    (work / "stand_ins.json").write_text("[]")
    assert_refused(capsys, trl_tests, ["report", "--work", str(work), "--source", "x", "--out", f"{NOWHERE}/r.md"],
                   f"--out {NOWHERE}/r.md", out)


@pytest.mark.parametrize("argv, names", [([], "command"), (["run", "--work", "w", "--trainer", "x"], "--trainer")],
                         ids=["no-command", "bad-trainer"])
def test_trl_tests_usage_errors_are_one_line(capsys, out, argv, names):
    """Sub-commands inherit the one-line parser."""
    assert_refused(capsys, trl_tests, argv, names, out)


def test_the_scripts_refuse_as_processes_too(out):
    """``python -m bench.trainer`` itself: the exit code and the one line reach the shell."""
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "bench.trainer", "--rounds", "0", "--output-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["python -m bench.trainer: error: argument --rounds: expected a whole number "
                                        ">= 1, got 0"]
    assert list(out.iterdir()) == []
