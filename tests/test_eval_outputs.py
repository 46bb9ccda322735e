"""tgpo.outputs.archive_existing: earlier outputs move to previous/<UTC time>/, never overwritten or deleted."""

from __future__ import annotations

import re

from tgpo.outputs import archive_existing


def test_named_entries_move_and_others_stay(tmp_path, capsys):
    (tmp_path / "summary.csv").write_text("old")
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "a.jsonl").write_text("{}")
    (tmp_path / "keep.sqlite").write_text("cache")
    archive = archive_existing(tmp_path, ["summary.csv", "samples", "not-there.json"])
    assert archive is not None and archive.parent == tmp_path / "previous"
    assert re.fullmatch(r"\d{8}T\d{6}Z", archive.name)
    assert (archive / "summary.csv").read_text() == "old" and (archive / "samples" / "a.jsonl").exists()
    assert not (tmp_path / "summary.csv").exists() and (tmp_path / "keep.sqlite").read_text() == "cache"
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and str(archive) in out[0]


def test_everything_but_previous_when_no_names(tmp_path):
    (tmp_path / "a.txt").write_text("1")
    first = archive_existing(tmp_path)
    (tmp_path / "a.txt").write_text("2")
    second = archive_existing(tmp_path)  # within the same second: a distinct folder, nothing overwritten
    assert first != second and (first / "a.txt").read_text() == "1" and (second / "a.txt").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous"]


def test_nothing_to_move(tmp_path, capsys):
    assert archive_existing(tmp_path / "new", ["summary.csv"]) is None
    assert (tmp_path / "new").is_dir() and capsys.readouterr().out == ""


# ------------------------------------------------------------------------------------------------------
# Output folders that hold the run's inputs (issue 25, defects 5 and 6): refused before anything moves
# ------------------------------------------------------------------------------------------------------


def _model_folder(path):
    """A run folder as training leaves it: weights, tokenizer, a checkpoint."""
    path.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "generation_config.json"):
        (path / name).write_text(name)
    (path / "checkpoint-2").mkdir()
    (path / "checkpoint-2" / "model.safetensors").write_text("ckpt")
    return sorted(p.name for p in path.rglob("*"))


def _stand_in_eval(model, out, capsys):
    import os
    from pathlib import Path

    from stand_in_server import StandInServer, lookup_from_rows

    import tgpo.tasks.utils as tu
    from tgpo.cli import main

    fixtures = Path(__file__).resolve().parent / "fixtures" / "benchmarks"
    os.environ["TGPO_BENCHMARK_DIR"] = str(fixtures)
    lookup = lookup_from_rows({b: tu.benchmark_rows(b, fixtures) for b in tu.BENCHMARKS}, tu.CHOICE_BENCHMARKS)
    capsys.readouterr()
    with StandInServer(lookup) as srv:
        rc = main(["eval", "--model", str(model), "--backend", "api", "--base-url", srv.base_url, "--output-dir",
                   str(out), "--retry-wait", "0", "--tasks", "tgpo_math500", "--limit", "1", "--num-samples", "1"])
    return rc, capsys.readouterr()


def test_eval_into_the_model_folder_is_refused_and_moves_nothing(tmp_path, capsys, monkeypatch):
    run = tmp_path / "RUN"
    before = _model_folder(run)
    monkeypatch.setenv("TGPO_BENCHMARK_DIR", str(tmp_path / "bench"))
    for out in (run, tmp_path):  # the model's folder, and a folder containing it
        rc, captured = _stand_in_eval(run, out, capsys)
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert rc == 2 and len(lines) == 1 and str(run) in lines[0] and "Traceback" not in captured.err
        assert sorted(p.name for p in run.rglob("*")) == before and not (run / "previous").exists()


def test_archiving_moves_only_the_suites_own_outputs(tmp_path, capsys):
    """A second eval into a folder that also holds other files archives only results/samples/summary/manifest."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "checkpoint-7").mkdir()
    (out / "tokenizer.json").write_text("{}")
    for _ in range(2):
        rc, _ = _stand_in_eval("stand-in", out, capsys)
        assert rc == 0
    archived = {p.name for folder in (out / "previous").iterdir() for p in folder.iterdir()}
    assert archived == {"results.json", "samples_tgpo_math500.jsonl", "summary.csv", "summary.md", "manifest.json",
                        "request_cache.sqlite"}  # the finished run's answers: set aside, a new run starts afresh
    assert (out / "notes.txt").read_text() == "mine" and (out / "checkpoint-7").is_dir()
    assert (out / "tokenizer.json").exists()


def test_train_overwrite_into_the_students_folder_is_refused_before_anything_moves(tmp_path, tiny_pair, capsys):
    import shutil

    import yaml

    from tgpo.cli import main

    student = tmp_path / "student"
    shutil.copytree(tiny_pair[0], student)
    before = sorted(p.name for p in student.rglob("*"))
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "1+1=", "answer": "2"}\n')
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model": str(student), "teacher_model": str(tiny_pair[1]), "dataset": {"path": str(data)},
        "trainer": {"method": "kdrl", "output_dir": str(tmp_path / "run"), "per_device_train_batch_size": 8,
                    "num_generations": 4, "max_completion_length": 8, "max_steps": 1}}))
    capsys.readouterr()
    rc = main(["train", "--config", str(config), "--output-dir", str(student), "--overwrite"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "student" in lines[0] and str(student) in lines[0], err
    assert sorted(p.name for p in student.rglob("*")) == before
