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
