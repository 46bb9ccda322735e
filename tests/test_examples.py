"""The first hour on the lab: `tgpo lab data` + the shipped example configs plan a CPU run, and config mistakes are
named with the closest valid key (issue 24; issue 25 defect 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tgpo.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _dry_run(capsys, config, *argv) -> tuple[int, str, str]:
    rc = main(["train", "--config", str(config), "--dry-run", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name, method, teacher", [("lab_tgpo", "tgpo", "teacher_cross"), ("lab_grpo", "grpo", None)])
def test_example_configs_plan_a_lab_run_on_this_cpu(capsys, tmp_path, monkeypatch, name, method, teacher):
    monkeypatch.chdir(tmp_path)
    assert main(["lab", "data", "lab_train.jsonl"]) == 0  # the first of the two commands
    rc, out, err = _dry_run(capsys, EXAMPLES / f"{name}.yaml")
    assert rc == 0, err
    assert f"method      {method}" in out and "tgpo/lab/zoo/student" in out
    assert ("tgpo/lab/zoo/teacher_cross" in out) == (teacher is not None)
    assert "this machine: CPU" in out and "computes in fp32" in out and "bf16" not in out.split("batch arithmetic")[0]
    assert "8000 prompts drawn" in out  # 125 steps x 64 prompts: the rows `tgpo lab data` writes by default


def test_dry_run_names_a_missing_report_to_package(capsys, monkeypatch):
    import transformers.integrations.integration_utils as integrations

    monkeypatch.setattr(integrations, "get_available_reporting_integrations", lambda: [])
    rc, out, _ = _dry_run(capsys, EXAMPLES / "lab_grpo.yaml", "--set", "trainer.report_to=tensorboard")
    assert rc == 0 and "WARNING: report_to tensorboard needs the package `tensorboard` (pip install tensorboard)" in out


def test_train_stops_on_a_missing_report_to_package_before_any_model_loads(capsys, tmp_path, monkeypatch):
    import transformers.integrations.integration_utils as integrations

    monkeypatch.setattr(integrations, "get_available_reporting_integrations", lambda: [])
    out = tmp_path / "run"
    rc = main(["train", "--config", str(EXAMPLES / "lab_grpo.yaml"), "--output-dir", str(out),
               "--set", "trainer.report_to=[tensorboard]"])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("tgpo train: error:")]
    assert rc == 2 and len(lines) == 1 and "tensorboard is not installed (pip install tensorboard)" in lines[0], err
    assert not out.exists()


def _config(tmp_path, cfg: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


LAB = {"model": "${lab_model:student}", "system_prompt": "", "trainer": {"method": "grpo", "max_steps": 1}}


@pytest.mark.parametrize("change, named, suggested", [
    ({"dataset": {"path": "x.jsonl", "lmit": 3}}, "'lmit'", "'limit'"),
    ({"modle": "x"}, "'modle'", "'model'"),
    ({"launch": {"num_procesess": 2}}, "'num_procesess'", "'num_processes'"),
    ({"trainer": {"method": "grpo", "learning_rat": 1e-5}}, "'learning_rat'", "'learning_rate'"),
    ({"trainer": {"method": "grop"}}, "'grop'", "'grpo'"),
])
def test_a_misspelled_key_is_named_with_the_closest_valid_one(capsys, tmp_path, change, named, suggested):
    rc, _, err = _dry_run(capsys, _config(tmp_path, {**LAB, **change}))
    line = [x for x in err.splitlines() if x.startswith("tgpo train: error:")]
    assert rc == 2 and len(line) == 1 and named in line[0] and f"did you mean {suggested}?" in line[0], err
    assert "Traceback" not in err


def test_a_flat_trl_style_yaml_is_told_where_trainer_fields_go(capsys, tmp_path):
    flat = {"model": "${lab_model:student}", "learning_rate": 1e-5, "num_generations": 8, "output_dir": "runs/x"}
    rc, _, err = _dry_run(capsys, _config(tmp_path, flat))
    assert rc == 2 and "put them under 'trainer:'" in err
    assert "['learning_rate', 'num_generations', 'output_dir']" in err


def test_a_wrong_method_option_is_named_with_the_closest_method(capsys):
    rc, _, err = _dry_run(capsys, EXAMPLES / "lab_grpo.yaml", "--method", "tgpo_ad")
    assert rc == 2 and "invalid choice: 'tgpo_ad'; did you mean 'tgpo_adv'?" in err


def test_top_level_help_is_for_users_and_version_is_printed(capsys):
    import tgpo

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tgpo {tgpo.__version__}"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "sub-command module" not in out and "add_arguments" not in out and "tgpo lab data" in out


def test_help_commands_do_not_import_torch():
    """`tgpo --help` and `tgpo train --help` stay fast: neither imports torch or TRL (measured: under 1 s)."""
    import subprocess
    import sys

    for argv in (["--help"], ["train", "--help"], ["lab", "--help"]):
        code = (f"import sys; from tgpo.cli import main; rc = main({argv!r}); "
                "sys.exit(10 if 'torch' in sys.modules or 'trl' in sys.modules else rc)")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (argv, result.returncode)
