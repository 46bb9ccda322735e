"""Fault and bad-input trials of `tgpo train` on tiny models: each fails if its defect comes back.

Run folders (rerun without --resume, --overwrite, a kill while a checkpoint is written, a corrupt checkpoint, a
signal), and bad configs (one line, exit code 2, before any model loads where possible).
"""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
import yaml
from transformers import TrainerCallback

from tgpo.checkpoints import RECORD, newest_complete
from tgpo.cli import main
from tgpo.config import TGPOConfig, field_bounds

ROWS = [{"problem": f"{i}+{i}", "answer": str(2 * i), "teacher_completion": f"\\boxed{{{2 * i}}}"} for i in range(4)]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path, pair, data=None, name="config.yaml", **trainer):
    data = data or _write_jsonl(tmp_path / "train.jsonl", ROWS)
    cfg = {
        "model": str(pair[0]), "teacher_model": str(pair[1]), "dataset": {"path": str(data)},
        "system_prompt": "Box the answer.",
        "trainer": {"method": "kdrl", "output_dir": str(tmp_path / "run"), "per_device_train_batch_size": 8,
                    "num_generations": 4, "max_completion_length": 8, "max_steps": 2, "save_steps": 1,
                    "learning_rate": 1e-3, **trainer},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _one_error_line(capsys, expected: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and expected in lines[0], err[-2000:]
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def no_model_loads(monkeypatch):
    """Make any model load fail loudly: an error that must come before loading then proves it did."""
    from transformers import AutoModelForCausalLM

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the bad input was reported")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)


# ------------------------------------------------------------------------------------------ run folders
def test_rerun_without_resume_stops_and_overwrite_moves_the_old_run_aside(tiny_pair, tmp_path, capsys):
    config = _config(tmp_path, tiny_pair)
    assert main(["train", "--config", str(config)]) == 0
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert main(["train", "--config", str(config)]) == 2
    _one_error_line(capsys, "already holds a run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before  # nothing was touched
    assert main(["train", "--config", str(config), "--overwrite", "--max-steps", "1"]) == 0
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.previous-")]
    assert len(moved) == 1 and sorted(p.name for p in moved[0].iterdir()) == before
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 1


def test_every_checkpoint_is_marked_complete_after_its_files(tiny_pair, tmp_path):
    config = _config(tmp_path, tiny_pair)
    assert main(["train", "--config", str(config)]) == 0
    for step in (1, 2):
        record = json.loads((tmp_path / "run" / f"checkpoint-{step}" / RECORD).read_text())
        assert "model.safetensors" in record["files"] and "trainer_state.json" in record["files"]


def test_resume_skips_a_half_written_checkpoint_and_falls_back(tiny_pair, tmp_path, capsys):
    config = _config(tmp_path, tiny_pair)
    assert main(["train", "--config", str(config)]) == 0
    run = tmp_path / "run"
    (run / "checkpoint-2" / RECORD).unlink()  # what a kill between the files and the record leaves
    (run / "checkpoint-3").mkdir()  # a kill right after the folder was made
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--resume", "--max-steps", "3"]) == 0
    err = capsys.readouterr().err
    assert "skipping" in err and "checkpoint-3 is incomplete" in err and "checkpoint-2 is incomplete" in err
    state = json.loads((run / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3]  # resumed from step 1's state


def test_a_corrupt_checkpoint_file_is_named_and_skipped(tiny_pair, tmp_path, capsys):
    config = _config(tmp_path, tiny_pair)
    assert main(["train", "--config", str(config)]) == 0
    weights = tmp_path / "run" / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    path, skipped = newest_complete(tmp_path / "run")
    assert path.name == "checkpoint-1" and "model.safetensors is corrupt" in skipped[0]
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--resume"]) == 0
    assert f"{weights} is corrupt" in capsys.readouterr().err


def test_resume_with_no_complete_checkpoint_is_one_line(tiny_pair, tmp_path, capsys):
    config = _config(tmp_path, tiny_pair)
    (tmp_path / "run" / "checkpoint-1").mkdir(parents=True)
    assert main(["train", "--config", str(config), "--resume"]) == 2
    _one_error_line(capsys, "no complete checkpoint")


class _SignalAt(TrainerCallback):
    def __init__(self, step, signum):
        self.step, self.signum = step, signum

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step - 1:
            os.kill(os.getpid(), self.signum)  # arrives mid-step: the step finishes, then the run stops


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_run_at_a_step_boundary_with_a_checkpoint(tiny_pair, tmp_path, capsys, monkeypatch,
                                                                    signum, code):
    from tgpo import trainer as trainer_module

    original = trainer_module.TGPOTrainer.__init__

    def with_signal(self, *a, **k):
        original(self, *a, **k)
        self.add_callback(_SignalAt(2, signum))

    monkeypatch.setattr(trainer_module.TGPOTrainer, "__init__", with_signal)
    config = _config(tmp_path, tiny_pair, max_steps=4, save_steps=100)
    handler_before = signal.getsignal(signum)
    assert main(["train", "--config", str(config)]) == code
    assert "continue with --resume" in capsys.readouterr().err
    path, skipped = newest_complete(tmp_path / "run")
    assert path is not None and path.name == "checkpoint-2" and not skipped
    assert not (tmp_path / "run" / "model.safetensors").exists()  # not written as a finished run
    assert signal.getsignal(signum) is handler_before  # the CLI's handler is gone again


# ------------------------------------------------------------------------------------------ numeric faults
def _with_callback(monkeypatch, callback):
    """Every TGPOTrainer the CLI builds gets ``callback`` (after the trainer's own guards)."""
    from tgpo import trainer as trainer_module

    original = trainer_module.TGPOTrainer.__init__

    def patched(self, *a, **k):
        original(self, *a, **k)
        self.add_callback(callback)

    monkeypatch.setattr(trainer_module.TGPOTrainer, "__init__", patched)


class _PoisonGradients(TrainerCallback):
    """From step ``step`` on, every gradient is multiplied by ``factor`` (NaN: a non-finite gradient of a finite
    loss; 0: a run in which nothing learns)."""

    def __init__(self, step, factor):
        self.step, self.factor, self.handles = step, factor, []

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 == self.step:
            self.handles = [p.register_hook(lambda g: g * self.factor) for p in model.parameters()]


class _PoisonWeights(TrainerCallback):
    """At the end of step ``step`` (after the update and its checks), one weight becomes NaN."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("nan")


def test_a_non_finite_gradient_stops_the_run_before_the_update(tiny_pair, tmp_path, capsys, monkeypatch):
    _with_callback(monkeypatch, _PoisonGradients(2, float("nan")))
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair))]) == 2
    _one_error_line(capsys, "non-finite gradient at step 2")
    path, skipped = newest_complete(tmp_path / "run")
    assert path.name == "checkpoint-1" and not skipped and not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("save_strategy, what", [("steps", "no checkpoint written"), ("no", "final model is not written")])
def test_non_finite_weights_are_never_written_as_a_checkpoint_or_final_model(tiny_pair, tmp_path, capsys, monkeypatch,
                                                                            save_strategy, what):
    _with_callback(monkeypatch, _PoisonWeights(2))
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair, save_strategy=save_strategy))]) == 2
    line = _one_error_line(capsys, "non-finite parameters")
    assert "step 2" in line and what in line
    run = tmp_path / "run"
    assert not (run / "checkpoint-2" / RECORD).exists() and not (run / "model.safetensors").exists()
    if save_strategy == "steps":
        assert newest_complete(run)[0].name == "checkpoint-1"


def test_a_non_finite_sampling_distribution_is_one_line_naming_the_step(tiny_pair, tmp_path, capsys, monkeypatch):
    from tgpo.trainer import TGPOTrainer

    def broken(self, prompts):  # what torch.multinomial says when the logits hold NaN
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")

    monkeypatch.setattr(TGPOTrainer, "_generate", broken)
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair))]) == 2
    _one_error_line(capsys, "non-finite sampling distribution while generating step 1")


def test_a_gradient_norm_of_exactly_zero_for_several_steps_warns(tiny_pair, tmp_path, monkeypatch, caplog):
    from tgpo.guards import ZERO_GRAD_STEPS

    _with_callback(monkeypatch, _PoisonGradients(1, 0.0))
    with caplog.at_level("WARNING", logger="tgpo.guards"):
        assert main(["train", "--config", str(_config(tmp_path, tiny_pair, max_steps=ZERO_GRAD_STEPS))]) == 0
    warned = [r.getMessage() for r in caplog.records if "grad_norm has been exactly 0" in r.getMessage()]
    assert warned == [f"grad_norm has been exactly 0 for {ZERO_GRAD_STEPS} logged steps in a row (up to step "
                      f"{ZERO_GRAD_STEPS}): nothing is learning (all rewards of each group equal? learning_rate too "
                      "high?)"]


@pytest.mark.parametrize("error, free", [
    (RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 3584 vs 3478"), 2**20),
    (OSError(28, "No space left on device"), 50 * 2**30),
])
def test_a_full_disk_during_training_is_one_line_naming_the_folder(tiny_pair, tmp_path, capsys, monkeypatch, error,
                                                                 free):
    import shutil
    from collections import namedtuple

    real_save = torch.save

    def save(obj, f, *a, **k):  # the second checkpoint's files hit the full disk
        if "checkpoint-2" in str(f):
            raise error
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100 * 2**30, 100 * 2**30 - free, free))
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair))]) == 2
    line = _one_error_line(capsys, "no disk space left in " + str(tmp_path / "run"))
    assert "while writing step 2" in line and "--resume" in line
    assert newest_complete(tmp_path / "run")[0].name == "checkpoint-1"


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "setting, expected",
    [
        ({"learning_rate": "fast"}, "learning_rate='fast': expected a number"),
        ({"guidance_weight": -0.05, "method": "tgpo"}, "guidance_weight=-0.05: must be >= 0.0"),
        ({"guidance_decay": -1e-5, "method": "tgpo"}, "guidance_decay=-1e-05: must be >= 0.0"),
        ({"guidance_min": -1.0, "method": "tgpo"}, "guidance_min=-1.0: must be >= 0.0"),
        ({"kdrl_beta": -0.1}, "kdrl_beta=-0.1: must be >= 0.0"),
        ({"loss_type": "sapo"}, "loss_type='sapo' is not supported"),
        ({"importance_sampling_level": "sequence"}, "importance_sampling_level='sequence' is not supported"),
        ({"top_entropy_quantile": 0.2}, "top_entropy_quantile=0.2 is not supported"),
        ({"max_steps": 0}, "max_steps=0: must be >= 1"),
        ({"learning_rate": 1e6}, "learning_rate=1000000.0: must be > 0.0 and <= 1.0"),
        ({"learning_rate": 1e30}, "learning_rate=1e+30: must be > 0.0 and <= 1.0"),
    ],
)
def test_bad_trainer_settings_are_one_line_before_any_model_loads(tiny_pair, tmp_path, capsys, no_model_loads,
                                                                   setting, expected):
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair, **setting))]) == 2
    _one_error_line(capsys, expected)


@pytest.mark.parametrize("flag, value", [("--max-steps", "0"), ("--max-steps", "-1")])
def test_non_positive_max_steps_flag_is_refused(tiny_pair, tmp_path, capsys, no_model_loads, flag, value):
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair)), flag, value]) == 2
    _one_error_line(capsys, "expected a whole number >= 1")


def test_output_dir_that_is_a_file(tiny_pair, tmp_path, capsys, no_model_loads):
    (tmp_path / "run").write_text("not a folder")
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair))]) == 2
    _one_error_line(capsys, "is a file, not a folder")


def test_unwritable_output_dir_is_refused_before_loading(tiny_pair, tmp_path, capsys, no_model_loads, monkeypatch):
    import tgpo.train_cli as cli

    (tmp_path / "run").mkdir()
    real_access = os.access
    monkeypatch.setattr(cli.os, "access", lambda p, mode: False if str(p).endswith("run") else real_access(p, mode))
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair))]) == 2
    _one_error_line(capsys, "is not writable")


@pytest.mark.parametrize("item", ["trainer.max_steps=[1", "dataset.limit={a", "model=: x"])
def test_a_set_value_that_is_not_yaml_is_one_line_naming_the_item(tiny_pair, tmp_path, capsys, no_model_loads, item):
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair)), "--set", item]) == 2
    _one_error_line(capsys, f"--set {item!r}: the value is not valid YAML")
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair)), "--set", item, "--dry-run"]) == 2
    _one_error_line(capsys, f"--set {item!r}")


def _copy_model(source, target, edit_file, **changes):
    import shutil

    shutil.copytree(source, target)
    path = target / edit_file
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return target


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_teacher_whose_config_disagrees_with_its_weights_is_one_line(tiny_pair, tmp_path, capsys, no_model_loads,
                                                                       dry_run):
    teacher = _copy_model(tiny_pair[1], tmp_path / "teacher", "config.json", hidden_size=64)  # weights: 48
    config = _config(tmp_path, (tiny_pair[0], teacher))
    assert main(["train", "--config", str(config), *(["--dry-run"] if dry_run else [])]) == 2
    line = _one_error_line(capsys, f"teacher model {teacher}: config.json disagrees with its weights")
    assert "hidden_size 64 in config.json, 48 in the weights" in line


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_custom_code_tokenizer_without_opt_in_is_one_line(tiny_pair, tmp_path, capsys, no_model_loads, dry_run):
    student = _copy_model(tiny_pair[0], tmp_path / "student", "tokenizer_config.json", tokenizer_class="MyTok",
                          auto_map={"AutoTokenizer": ["tok.MyTok", None]})
    (student / "tok.py").write_text("raise SystemExit('custom code ran')\n")
    config = _config(tmp_path, (student, tiny_pair[1]))
    assert main(["train", "--config", str(config), *(["--dry-run"] if dry_run else [])]) == 2
    line = _one_error_line(capsys, f"student model {student} needs its own code")
    assert "tok.MyTok" in line and "trust_remote_code: true" in line


def test_negative_dataset_limit(tiny_pair, tmp_path, capsys, no_model_loads):
    config = _config(tmp_path, tiny_pair)
    assert main(["train", "--config", str(config), "--set", "dataset.limit=-1"]) == 2
    _one_error_line(capsys, "dataset.limit=-1")


def test_non_utf8_training_line_names_the_line(tiny_pair, tmp_path, capsys, no_model_loads):
    data = tmp_path / "train.jsonl"
    data.write_bytes(json.dumps(ROWS[0]).encode() + b"\n" + b'{"problem": "caf\xe9", "answer": "1"}\n')
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair, data=data))]) == 2
    _one_error_line(capsys, "train.jsonl, line 2: not UTF-8")


def test_a_prompt_longer_than_the_context_is_refused_by_row(tiny_pair, tmp_path, capsys, no_model_loads):
    rows = ROWS + [{"problem": "1+" * 500_000 + "1", "answer": "500001"}]
    data = _write_jsonl(tmp_path / "train.jsonl", rows)
    assert main(["train", "--config", str(_config(tmp_path, tiny_pair, data=data))]) == 2
    _one_error_line(capsys, "row 4's prompt has")


@pytest.mark.parametrize("name", sorted(field_bounds()))
def test_every_ranged_field_rejects_a_value_below_its_range(name):
    bounds = field_bounds()[name]
    bad = (bounds.low - 1) if bounds.low_inclusive else bounds.low  # just outside the range
    with pytest.raises(ValueError, match=rf"TGPOConfig\.{name}={bad!r}: must be"):
        TGPOConfig(output_dir="/tmp/tgpo-range", use_cpu=True, bf16=False, method="tgpo", **{name: bad})


def test_vllm_importance_sampling_correction_stays_on_by_default():
    args = TGPOConfig(output_dir="/tmp/tgpo-is", use_cpu=True, bf16=False, method="grpo")
    assert args.vllm_importance_sampling_correction is True  # honoured by every loss (tests/test_trainer.py)
