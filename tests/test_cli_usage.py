"""Bad input on the command line: one line naming it, exit code 2, before any model loads and before anything is
written (the suite's rule, README.md). argparse's own error is a usage block plus the error line; every entry point
here must give the one line instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgpo.cli import main as tgpo_main

ZOO = Path(__file__).resolve().parents[1] / "tgpo" / "lab" / "zoo"


def _one_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.err and len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize("argv, names", [
    ([], "COMMAND"),
    (["lab", "bogus"], "'bogus'"),
    (["train", "--config", "x.yaml", "--max-steps", "-1"], "--max-steps"),
    (["train", "--config", "x.yaml", "--method", "nope"], "'nope'"),
    (["eval", "--model", "m", "--limit", "abc"], "--limit"),
    (["align", "--teacher", "t"], "--student"),
    (["lab", "data", "out.jsonl", "--n", "0"], "--n"),
    (["lab", "eval", "student", "--show", "-1"], "--show"),
    (["lab", "eval", "student", "--temperature", "-1"], "--temperature"),
])
def test_a_usage_error_of_every_sub_command_is_one_line(capsys, argv, names):
    assert tgpo_main(argv) == 2
    line = _one_line(capsys)
    assert line.startswith("tgpo") and ": error: " in line and names in line, line


def test_align_refuses_an_output_folder_that_is_a_file_before_loading_the_models(tmp_path, capsys):
    """It used to load both models, then fail on the first save with NotADirectoryError's traceback."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert tgpo_main(["align", "--teacher", f"{ZOO}/teacher_cross", "--student", f"{ZOO}/student",
                      "--output-dir", str(afile / "sub")]) == 2
    assert f"is not a folder ({afile} is a file)" in _one_line(capsys)
    assert afile.read_text() == "x"


def test_lab_list_says_when_the_models_folder_does_not_exist(tmp_path, capsys):
    assert tgpo_main(["lab", "list", "--models-dir", str(tmp_path / "nowhere")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"(models folder {tmp_path / 'nowhere'} (from --models-dir) does not exist)"


@pytest.mark.parametrize("script", ["table1", "figure2", "sweep", "regime_map", "reproduce_all", "costs", "audit"])
def test_a_repro_output_dir_that_is_a_file_is_one_line(tmp_path, capsys, script):
    """``--output-dir FILE`` used to end in FileExistsError's traceback from the results lock's mkdir (table1, table2,
    table3, figure2, figure5, regime_map, sweep, reproduce_all, costs)."""
    import importlib

    from repro import options

    afile = tmp_path / "afile"
    afile.write_text("x")
    module = importlib.import_module(f"repro.{script}")
    assert options.cli(module.main, ["--output-dir", str(afile)]) == 2
    assert _one_line(capsys) == f"{script}: error: argument --output-dir: '{afile}' is not a folder"
    assert afile.read_text() == "x"


def test_the_audit_refuses_a_config_it_would_ignore(capsys):
    """The audit reads every preset and paper config; a --config used to be accepted, ignored, and audit.md
    written."""
    from repro import audit, options

    assert options.cli(audit.main, ["--config", "nonexistent_cfg", "--dry-run"]) == 2
    assert "unrecognized arguments: --config nonexistent_cfg" in _one_line(capsys)
