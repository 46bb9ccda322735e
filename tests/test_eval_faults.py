"""tgpo eval under faults and bad input: nothing lost, nothing written as complete that is not, one clear line.

Every trial runs ``tgpo eval --backend api`` against tests/stand_in_server.py (in-process, fixture benchmarks)
or stops before any model or server is needed. Each test fails if its defect comes back.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "benchmarks"
ONE_TASK = ["--tasks", "tgpo_math500", "--limit", "2", "--num-samples", "2", "--max-new-tokens", "64"]


def _lookup():
    from stand_in_server import lookup_from_rows

    import tgpo.tasks.utils as tu

    return lookup_from_rows({b: tu.benchmark_rows(b, FIXTURES) for b in tu.BENCHMARKS}, tu.CHOICE_BENCHMARKS)


def _eval(out: Path, extra=(), mode="right", **server):
    """``(exit code, summary rows or None, requests the server saw)``."""
    from stand_in_server import StandInServer

    from tgpo.cli import main

    with StandInServer(_lookup(), mode=mode, **server) as srv:
        rc = main(["eval", "--model", "stand-in", "--backend", "api", "--base-url", srv.base_url,
                   "--output-dir", str(out), "--retry-wait", "0", *extra])
        requests = list(srv.requests)
    summary = out / "summary.csv"
    rows = {r["task"]: r for r in csv.DictReader(summary.open())} if summary.exists() else None
    return rc, rows, requests


@pytest.fixture(autouse=True)
def _fixture_benchmarks(monkeypatch):
    monkeypatch.setenv("TGPO_BENCHMARK_DIR", str(FIXTURES))


def _cache_answers(out: Path) -> int:
    with sqlite3.connect(out / "request_cache.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


@pytest.mark.slow
def test_http_500_on_alternate_requests_is_retried(tmp_path):
    rc, rows, requests = _eval(tmp_path / "out", [*ONE_TASK, "--max-retries", "6"], fault="http500_alternate")
    assert rc == 0
    r = rows["tgpo_math500"]
    assert r["status"] == "complete" and r["missing"] == "0" and float(r["pass@1"]) == 1.0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["tgpo_status"]["status"] == "complete"
    assert len(requests) > 4  # the failures were sent again


@pytest.mark.slow
def test_a_failing_request_keeps_every_finished_answer_and_a_rerun_sends_only_the_rest(tmp_path):
    out = tmp_path / "out"
    rc, rows, requests = _eval(out, [*ONE_TASK, "--max-retries", "0"], fault="http500_alternate")
    assert rc == 1  # incomplete: not a success
    r = rows["tgpo_math500"]
    missing = int(r["missing"])
    assert r["status"] == "incomplete" and missing == 2 and r["pass@1"] == "" and r["pass@1_authors"] == ""
    assert _cache_answers(out) == 4 - missing  # the finished answers are kept
    rc, rows, requests = _eval(out, ONE_TASK)
    assert rc == 0 and rows["tgpo_math500"]["status"] == "complete" and float(rows["tgpo_math500"]["pass@1"]) == 1.0
    assert len(requests) == missing  # only what was missing
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["requests"]["from_cache"] == 4 - missing and manifest["requests"]["sent"] == missing
    # a finished run's answers are not reused by the next run (a model name may serve a new checkpoint)
    rc, _, requests = _eval(out, ONE_TASK)
    assert rc == 0 and len(requests) == 4
    assert any((a / "request_cache.sqlite").exists() for a in (out / "previous").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["schema", "null"])
def test_unparseable_answers_are_counted_never_a_complete_zero(tmp_path, fault, capsys):
    """Valid JSON without choices, or content null: retried, then counted; the run exits non-zero and the task
    is marked incomplete with the count (it used to be written as a complete 0%)."""
    rc, rows, requests = _eval(tmp_path / "out", [*ONE_TASK, "--max-retries", "1"], fault=fault)
    assert rc == 1
    r = rows["tgpo_math500"]
    assert r["status"] == "incomplete" and r["missing"] == "4" and r["pass@1"] == ""
    results = json.loads((tmp_path / "out" / "results.json").read_text())  # lm-eval's file says so too
    assert results["tgpo_status"] == {"status": "incomplete", "missing_samples": {"tgpo_math500": 4}}
    assert len(requests) == 4 * 2  # each sample tried twice
    assert "incomplete" in capsys.readouterr().err
    why = json.loads((tmp_path / "out" / "manifest.json").read_text())["requests"]["why"]
    assert why == {"unexpected response schema" if fault == "schema" else "no content": 4}


@pytest.mark.slow
def test_slow_server_times_out_and_is_counted(tmp_path):
    args = ["--tasks", "tgpo_math500", "--limit", "1", "--num-samples", "1", "--request-timeout", "1", "--max-retries", "0"]
    rc, rows, _ = _eval(tmp_path / "out", args, delay=2.5)
    assert rc == 1 and rows["tgpo_math500"]["status"] == "incomplete" and rows["tgpo_math500"]["missing"] == "1"


@pytest.mark.slow
def test_server_refusal_is_passed_through(tmp_path, capsys):
    """A request the server refuses (prompt plus max_tokens over its context) stops the run with the server's
    own message, in one line with exit code 2; nothing is written as a result."""
    rc, rows, _ = _eval(tmp_path / "out", ONE_TASK, context_limit=32)
    assert rc == 2 and rows is None
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tgpo eval:")]
    assert len(err) == 1 and "HTTP 400" in err[0] and "maximum context length is 32 tokens" in err[0]


# ------------------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2, before any model or server is needed
# ------------------------------------------------------------------------------------------------------


def _bad(tmp_path, capsys, *extra, out=None):
    from tgpo.cli import main

    argv = ["eval", "--model", "no-such-model", "--backend", "api", "--base-url", "http://127.0.0.1:9/v1",
            "--output-dir", str(out or tmp_path / "out"), *extra]
    capsys.readouterr()
    rc = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2 and "Traceback" not in captured.err
    assert len(lines) == 1 and lines[0].startswith("tgpo eval: "), captured.err
    return lines[0]


@pytest.mark.parametrize(
    "extra,expected",
    [
        (["--tasks", "tgpo_nosuch"], "unknown task 'tgpo_nosuch'"),
        (["--limit", "0"], "--limit must be at least 1 problem"),
        (["--limit", "-3"], "--limit must be at least 1 problem"),
        (["--limit", "2.5"], "whole number of problems"),
        (["--num-samples", "0"], "--num-samples must be at least 1"),
        (["--model-args", "oops"], "--model-args: expected k=v"),
        (["--min-p", "2"], "--min-p must be at most 1"),
        (["--batch-size", "abc"], "--batch-size must be a whole number >= 1, auto or auto:N, got 'abc'"),
        (["--batch-size", "0"], "--batch-size must be a whole number >= 1"),
        (["--num-concurrent", "0"], "--num-concurrent must be at least 1, got 0"),
        (["--max-retries", "-1"], "--max-retries must be at least 0, got -1"),
        (["--request-timeout", "0"], "--request-timeout must be at least 1, got 0"),
        (["--include-path", "/nonexistent/tasks"], "--include-path /nonexistent/tasks: not a folder"),
    ],
)
def test_bad_arguments(tmp_path, capsys, extra, expected):
    assert expected in _bad(tmp_path, capsys, *extra)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_list_tasks_refuses_a_task_folder_that_is_not_there(tmp_path, capsys):
    """``--list-tasks --include-path X`` used to print an empty list (exit 0) for a folder that does not exist."""
    from tgpo.cli import main

    assert main(["eval", "--list-tasks", "--include-path", str(tmp_path / "nowhere")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"tgpo eval: --include-path {tmp_path / 'nowhere'}: not a folder of task YAMLs"]


def test_an_unknown_task_for_a_model_without_chat_template_is_one_line(tmp_path, capsys):
    """The plain-prompt note comes only once the tasks are known good, so a refusal stays one line."""
    from tgpo.cli import main

    capsys.readouterr()
    assert main(["eval", "--model", str(HERE.parent / "tgpo" / "lab" / "zoo" / "student"), "--tasks", "tgpo_nosuch",
                 "--output-dir", str(tmp_path / "out")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown task 'tgpo_nosuch'" in lines[0], lines


def test_output_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "results.txt"
    f.write_text("x")
    assert f"{f} is a file" in _bad(tmp_path, capsys, out=f)
    assert f"cannot be created: {f} is a file" in _bad(tmp_path, capsys, out=f / "sub")
    assert f.read_text() == "x"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (a folder nobody can write to)")
def test_output_dir_that_cannot_be_written(tmp_path, capsys):
    assert "/proc/tgpo-out is not writable" in _bad(tmp_path, capsys, out=Path("/proc/tgpo-out"))


def test_malformed_benchmark_file_names_file_and_line(tmp_path, capsys, monkeypatch):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "math500.jsonl").write_text('{"id": "a", "problem": "1+1?", "answer": "2"}\n{"id": "b", "problem": \n')
    monkeypatch.setenv("TGPO_BENCHMARK_DIR", str(bench))
    line = _bad(tmp_path, capsys, "--tasks", "tgpo_math500")
    assert f"{bench / 'math500.jsonl'}, line 2: not valid JSON" in line


def test_missing_benchmark_offline_names_file_and_hub_id(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TGPO_BENCHMARK_DIR", str(tmp_path))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    line = _bad(tmp_path, capsys, "--tasks", "tgpo_mmlu_pro")
    assert str(tmp_path / "mmlu_pro.jsonl") in line and "TIGER-Lab/MMLU-Pro" in line


# ------------------------------------------------------------------------------------------------------
# Faults from issue 25: disk full, a corrupt cache, Ctrl-C, rate limits, another model answering
# ------------------------------------------------------------------------------------------------------


def _one_line(captured, rc_expected=2):
    lines = [line for line in captured.err.splitlines() if line.startswith("tgpo eval:")]
    assert "Traceback" not in captured.err and len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.slow
def test_disk_full_while_writing_outputs_keeps_every_answer(tmp_path, capsys, monkeypatch):
    """ENOSPC while writing the outputs: one line, exit 2, no half-written output under its final name, and the
    rerun resends nothing (the cache was not marked complete before the outputs existed)."""
    import errno

    out = tmp_path / "out"
    real_write = Path.write_text

    def full_disk(self, *a, **kw):
        if self.parent == out and "previous" not in self.parts:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, *a, **kw)

    monkeypatch.setattr(Path, "write_text", full_disk)
    capsys.readouterr()
    rc, rows, first = _eval(out, ONE_TASK)
    line = _one_line(capsys.readouterr())
    assert rc == 2 and "No space left on device" in line and len(first) == 4
    assert rows is None and not list(out.glob("samples_*")) and not list(out.glob(".*tmp"))
    monkeypatch.setattr(Path, "write_text", real_write)
    rc, rows, again = _eval(out, ONE_TASK)
    assert rc == 0 and again == [] and rows["tgpo_math500"]["status"] == "complete"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory", "other-schema"])
def test_corrupt_request_cache_is_moved_aside_in_one_line(tmp_path, capsys, damage):
    out = tmp_path / "out"
    cache = out / "request_cache.sqlite"
    out.mkdir()
    if damage == "garbage":
        cache.write_bytes(b"this is not a database" * 100)
    elif damage == "truncated":
        with sqlite3.connect(cache) as db:
            db.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
            db.executemany("INSERT INTO answers VALUES (?, ?)", [(str(i), "x" * 500) for i in range(200)])
        cache.write_bytes(cache.read_bytes()[:5000])
    elif damage == "directory":
        cache.mkdir()
    else:
        with sqlite3.connect(cache) as db:
            db.execute("CREATE TABLE answers (id INTEGER, text BLOB, extra REAL)")
    capsys.readouterr()
    rc, rows, requests = _eval(out, ONE_TASK)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    notes = [line for line in captured.out.splitlines() + captured.err.splitlines() if "request cache" in line]
    assert len(notes) == 1 and str(cache) in notes[0] and "moved to request_cache.sqlite.corrupt-1" in notes[0]
    assert rc == 0 and rows["tgpo_math500"]["status"] == "complete" and len(requests) == 4
    assert (out / "request_cache.sqlite.corrupt-1").exists() and _cache_answers(out) == 4


@pytest.mark.slow
def test_retry_after_on_429_is_honoured(tmp_path):
    """The server rate-limits for its first 1.5 s and says so in Retry-After: with two quick retries (0.01 s,
    0.02 s) the run finishes only if it waits as told."""
    rc, rows, requests = _eval(tmp_path / "out", [*ONE_TASK, "--max-retries", "2", "--retry-wait", "0.01"],
                               fault="ratelimit", retry_after=1.5)
    assert rc == 0 and rows["tgpo_math500"]["status"] == "complete"
    assert len(requests) > 4  # the limited ones were sent again


@pytest.mark.slow
def test_a_server_answering_as_another_model_is_named_and_recorded(tmp_path, capsys):
    out = tmp_path / "out"
    capsys.readouterr()
    rc, rows, _ = _eval(out, ONE_TASK, served_model="some-other-model")
    err = capsys.readouterr().err
    named = [line for line in err.splitlines() if "some-other-model" in line]
    assert rc == 0 and len(named) == 1 and "'stand-in'" in named[0]
    assert json.loads((out / "manifest.json").read_text())["requests"]["served_models"] == {"some-other-model": 4}


@pytest.mark.slow
def test_one_ctrl_c_stops_an_api_eval_with_hanging_requests(tmp_path):
    """Two requests are answered, the rest hang for a minute: one SIGINT ends the run within seconds, exit 130,
    with the two answers in the cache; the rerun sends only the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from stand_in_server import StandInServer

    out = tmp_path / "out"
    # PYTHONFAULTHANDLER: if the run does not end, the SIGABRT below makes it print where each thread is
    env = {**os.environ, "TGPO_BENCHMARK_DIR": str(FIXTURES), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    with StandInServer(_lookup(), mode="right", hang_after=2) as srv:
        proc = subprocess.Popen([sys.executable, "-m", "tgpo.cli", "eval", "--model", "stand-in", "--backend", "api",
                                 "--base-url", srv.base_url, "--output-dir", str(out), "--retry-wait", "0",
                                 "--num-concurrent", "2", *ONE_TASK], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while len(srv.requests) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert len(srv.requests) == 4, "the eval never reached the hanging requests"
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
        waited = time.monotonic() - sent
    stacks = err.find("Thread 0x")  # faulthandler's dump, when the run had to be aborted
    assert proc.returncode == 130 and waited < 10, (proc.returncode, waited, err[stacks:stacks + 6000] if stacks >= 0
                                                    else err[-2000:])
    lines = [line for line in err.splitlines() if line.startswith("tgpo eval:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err
    assert _cache_answers(out) == 2
    rc, rows, requests = _eval(out, ONE_TASK)
    assert rc == 0 and len(requests) == 2


def test_ctrl_c_ends_an_eval_even_when_the_interrupt_is_swallowed():
    """A library that catches KeyboardInterrupt (or a main thread stuck behind a hung request) cannot keep an
    interrupted eval alive: the watchdog armed by Ctrl-C ends the process with 130 after the grace period."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from tgpo.cli import interrupt_with_deadline\n"
        "interrupt_with_deadline(1.0)\n"
        "try:\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"  # a library that swallows it, then waits on
        "    pass\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    waited = time.monotonic() - sent
    assert proc.returncode == 130 and 0.9 < waited < 10, (proc.returncode, waited, err)
    lines = [line for line in err.splitlines() if line.startswith("tgpo eval:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err
