"""`tgpo train` end to end on tiny models: YAML config, local JSONL, checkpoints, --resume, bad input."""

import json

import pytest
import yaml

from tgpo.cli import main


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [{"problem": f"{i}+{i}", "answer": str(2 * i), "teacher_completion": f"\\boxed{{{2 * i}}}"} for i in range(4)]


def _config(tmp_path, pair, data, **trainer):
    cfg = {
        "model": str(pair[0]),
        "teacher_model": str(pair[1]),
        "dataset": {"path": str(data), "limit": 4},
        "system_prompt": "Reason, then box the answer.",  # the authors' prompt would not fit the tiny models' 512 positions
        "trainer": {
            "method": "tgpo",
            "output_dir": str(tmp_path / "run"),
            "per_device_train_batch_size": 8,
            "num_generations": 4,
            "max_completion_length": 8,
            "max_steps": 2,
            "save_steps": 1,
            "learning_rate": 1e-3,
            **trainer,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _state(run_dir):
    return json.loads((run_dir / "trainer_state.json").read_text())


def test_train_then_resume(tiny_pair, tmp_path):
    data = _write_jsonl(tmp_path / "train.jsonl", ROWS)
    config = _config(tmp_path, tiny_pair, data)
    assert main(["train", "--config", str(config)]) == 0
    run = tmp_path / "run"
    assert (run / "checkpoint-2" / "model.safetensors").exists()
    assert (run / "model.safetensors").exists()
    assert main(["train", "--config", str(config), "--resume", "--max-steps", "3"]) == 0
    state = _state(run / "checkpoint-3")
    assert state["global_step"] == 3
    weights = [h["guidance_weight"] for h in state["log_history"] if "loss" in h]
    assert weights == pytest.approx([0.002, 0.002 - 1e-5, 0.002 - 2e-5])


def test_method_and_set_overrides_plain_prompts(tiny_plain_pair, tmp_path):
    data = _write_jsonl(tmp_path / "train.jsonl", ROWS)
    config = _config(tmp_path, tiny_plain_pair, data)
    rc = main(["train", "--config", str(config), "--method", "luffy", "--max-steps", "1", "--output-dir",
               str(tmp_path / "luffy"), "--set", "trainer.save_steps=5", "--set", "dataset.limit=2"])
    assert rc == 0
    state = _state(tmp_path / "luffy")  # the final state, written at the end of training
    assert state["global_step"] == 1 and state["save_steps"] == 5
    assert "luffy/off_policy_reward" in state["log_history"][0]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("no_answer", "no 'answer' column"),
        ("empty", "is empty"),
        ("missing_model", "student model path"),
        ("missing_data", "does not exist"),
        ("unknown_key", "unknown top-level keys"),
        ("bad_method", "invalid choice: 'nope'"),
        ("luffy_no_trace", "no 'teacher_completion' column"),
    ],
)
def test_bad_input_is_one_clear_message(tiny_pair, tmp_path, capsys, case, expected):
    rows = [{k: v for k, v in r.items() if k != "answer"} for r in ROWS] if case == "no_answer" else ROWS
    if case == "luffy_no_trace":
        rows = [{k: v for k, v in r.items() if k != "teacher_completion"} for r in ROWS]
    data = _write_jsonl(tmp_path / "train.jsonl", [] if case == "empty" else rows)
    pair = (tmp_path / "nowhere", tiny_pair[1]) if case == "missing_model" else tiny_pair
    config = _config(tmp_path, pair, tmp_path / "absent.jsonl" if case == "missing_data" else data)
    args = ["train", "--config", str(config)]
    if case == "unknown_key":
        args += ["--set", "modle=x"]
    if case == "bad_method":
        args += ["--method", "nope"]
    if case == "luffy_no_trace":
        args += ["--method", "luffy"]
    assert main(args) == 2
    err = capsys.readouterr().err
    messages = [line for line in err.splitlines() if line.startswith("tgpo train: error:")]
    assert len(messages) == 1 and expected in messages[0]
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "tgpo_run.yaml").exists()  # a refused run leaves no record of a run
    if case in ("no_answer", "empty", "missing_data"):
        assert "train.jsonl" in err or "absent.jsonl" in err


def test_a_missing_data_file_is_refused_before_the_output_folder_is_touched(tiny_pair, tmp_path, capsys):
    """With --resume it used to say "no checkpoint ...; starting from step 0" first, and create the folder."""
    config = _config(tmp_path, tiny_pair, tmp_path / "absent.jsonl")
    assert main(["train", "--config", str(config), "--resume"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "absent.jsonl" in lines[0] and "does not exist" in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_vocabulary_mismatch_via_cli(tiny_pair, tmp_path, capsys):
    from tgpo.testing import CHARS, build_tokenizer, save_model

    bad = save_model(tmp_path / "bad_teacher", build_tokenizer(chars=list(reversed(CHARS))))
    data = _write_jsonl(tmp_path / "train.jsonl", ROWS)
    config = _config(tmp_path, (tiny_pair[0], bad), data)
    assert main(["train", "--config", str(config)]) == 2
    assert "disagree" in capsys.readouterr().err
    assert not (tmp_path / "run" / "tgpo_run.yaml").exists()


# ------------------------------------------------------------------------------------------ provenance and --resume
def _trained(tmp_path, pair, **trainer):
    data = _write_jsonl(tmp_path / "train.jsonl", ROWS)
    config = _config(tmp_path, pair, data, **trainer)
    assert main(["train", "--config", str(config)]) == 0
    return config, tmp_path / "run"


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tgpo train: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def test_a_run_records_its_config_and_its_model_card_names_method_and_teacher(tiny_pair, tmp_path):
    from tgpo import __version__

    config, run = _trained(tmp_path, tiny_pair, learning_rate=2e-3)
    record = yaml.safe_load((run / "tgpo_run.yaml").read_text())
    assert record["method"] == "tgpo" and record["model"] == str(tiny_pair[0].resolve())
    assert record["teacher_model"] == str(tiny_pair[1].resolve())
    assert record["dataset"] == {"path": str((tmp_path / "train.jsonl").resolve()), "split": "train", "limit": 4}
    assert record["trainer"]["learning_rate"] == 2e-3 and record["trainer"]["max_steps"] == 2
    assert record["schedule"]["lr_scheduler_type"] == "linear" and record["suite"]["version"] == __version__
    assert record["config_file"] == str(config) and "transformers" in record["versions"]
    card = (run / "README.md").read_text()
    assert "[None]" not in card and "TGPO" in card and str(tiny_pair[1].resolve()) in card
    assert "docs/method.md" in card and "tgpo_run.yaml" in card and "- tgpo" in card


@pytest.mark.parametrize("change, key", [
    (["--method", "grpo"], "method: 'tgpo' -> 'grpo'"),
    (["--set", "trainer.learning_rate=1e-2"], "schedule.learning_rate: 0.001 -> 0.01"),
    (["--preset", "controlled"], "preset: None -> 'controlled'"),
])
def test_resume_refuses_a_changed_method_preset_or_schedule_naming_the_key(tiny_pair, tmp_path, capsys, change, key):
    config, run = _trained(tmp_path, tiny_pair)
    before = (run / "tgpo_run.yaml").read_text()
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--resume", "--max-steps", "3", *change]) == 2
    line = _error_line(capsys)
    assert key in line and "--allow-changes" in line
    assert not (run / "checkpoint-3").exists() and (run / "tgpo_run.yaml").read_text() == before
    assert main(["train", "--config", str(config), "--resume", "--max-steps", "3", *change, "--dry-run"]) == 2
    assert _error_line(capsys) == line  # the plan says so too, without loading a model


def test_resume_with_allow_changes_uses_and_records_the_new_learning_rate(tiny_pair, tmp_path):
    config, run = _trained(tmp_path, tiny_pair)
    assert main(["train", "--config", str(config), "--resume", "--allow-changes", "--max-steps", "3",
                 "--set", "trainer.learning_rate=1e-2"]) == 0
    rates = [h["learning_rate"] for h in _state(run)["log_history"] if "loss" in h]
    assert rates == pytest.approx([1e-3, 5e-4, 1e-2 / 3])  # linear decay of the new rate over 3 steps, at step 3
    record = yaml.safe_load((run / "tgpo_run.yaml").read_text())
    assert record["schedule"]["learning_rate"] == 1e-2 and record["previous"]["schedule"]["learning_rate"] == 1e-3
    assert record["changed_on_resume"] == {"schedule.learning_rate": [1e-3, 1e-2]}


def test_extending_max_steps_continues_the_schedule_instead_of_lr_zero(tiny_pair, tmp_path):
    config, run = _trained(tmp_path, tiny_pair, method="grpo")
    assert main(["train", "--config", str(config), "--resume", "--max-steps", "4"]) == 0
    rates = [h["learning_rate"] for h in _state(run)["log_history"] if "loss" in h]
    assert rates == pytest.approx([1e-3, 5e-4, 5e-4, 2.5e-4])  # the 4-step linear decay from step 3 on


def test_resume_with_another_student_is_one_line(tiny_pair, tmp_path, capsys):
    from tgpo.testing import build_tokenizer, save_model

    config, run = _trained(tmp_path, tiny_pair)
    other = save_model(tmp_path / "other_student", build_tokenizer(), hidden=48)
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--resume", "--max-steps", "3", "--set", f"model={other}"]) == 2
    line = _error_line(capsys)
    assert "holds another student" in line and "hidden_size 32 vs 48" in line
