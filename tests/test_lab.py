"""Fast tests of the CPU divergence lab (world, tokenizer, build cache). No stored model is rebuilt."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

from tgpo.lab import config as C
from tgpo.lab import world as W

torch.set_num_threads(1)


# --------------------------------------------------------------------------- world
@pytest.mark.parametrize("name", ["rl_train", "id", "hard", "ood"])
def test_splits_are_deterministic(name):
    a = W.make_split(name, n=50, seed=3)
    b = W.make_split(name, n=50, seed=3)
    assert a == b
    assert W.make_split(name, n=50, seed=4) != a


def test_eval_splits_fixed_distinct_heldout():
    for name in W.EVAL_SPLITS:
        rows = W.make_split(name)
        assert len(rows) == C.WORLD.eval_size
        assert rows == W.make_split(name)
        assert len({r["problem"] for r in rows}) == len(rows)
        assert all(W.is_heldout([int(x) for x in r["problem"].split("+")]) for r in rows)
        assert all(r["answer"].isdigit() for r in rows)
    assert all(r["k"] == C.WORLD.hard_k for r in W.make_split("hard"))
    assert all(int(r["problem"].split("+")[0]) >= 10 and r["k"] == C.WORLD.ood_k for r in W.make_split("ood"))


@pytest.mark.parametrize("name", W.EVAL_SPLITS)
def test_larger_eval_splits_extend_the_smaller_ones(name):
    """Problems are drawn in sequence, so a larger split starts with the problems of a smaller one (results on the
    first 200 stay comparable), and there are enough distinct held-out problems to draw from."""
    import itertools

    k, ood, _ = W._split_spec(name, C.WORLD)
    firsts = range(C.WORLD.ood_first_min, C.WORLD.ood_first_max + 1) if ood else range(C.WORLD.digit_min, C.WORLD.digit_max + 1)
    digits = range(C.WORLD.digit_min, C.WORLD.digit_max + 1)
    distinct = sum(W.is_heldout(ops) for ops in itertools.product(firsts, *[digits] * (k - 1)))
    assert C.WORLD.eval_size <= 0.8 * distinct  # room to spare: rejection sampling stays quick
    assert W.make_split(name)[:200] == W.make_split(name, n=200)


def test_heldout_never_in_training():
    eval_problems = {r["problem"] for s in W.EVAL_SPLITS for r in W.make_split(s)}
    train = W.make_split("rl_train", n=5000, seed=0) + W.make_split("dev_k5")
    assert not eval_problems & {r["problem"] for r in train}
    import random

    rng = random.Random(0)
    n_two_digit = 0
    for pc in (C.MODELS[C.STUDENT].pretrain, C.MODELS[C.TEACHER_CROSS].pretrain):
        for _ in range(3000):
            prompt, comp = W.sample_pretrain_example(
                rng,
                pc.k_weights,
                pc.t_share,
                two_digit_share=pc.two_digit_share,
                two_digit_ks=pc.two_digit_ks,
            )
            ops = [int(x) for x in prompt.rstrip("=").split("+")]
            assert not W.is_heldout(ops)
            if max(ops) > 9:  # two-digit operands: first place only, only where the recipe asks for them
                assert pc.two_digit_share > 0 and max(ops[1:]) <= 9
                n_two_digit += 1
            assert prompt.rstrip("=") not in eval_problems
    assert n_two_digit > 0


def _eval_steps(text: str, operands: list[int]) -> int:
    """Check every step of an S/T/mixed trace is correct arithmetic on the running sum; return the answer."""
    import re

    acc = operands[0]
    body, boxed = text.split(W.BOXED)
    steps = [s for s in re.split(r";|\. ", body) if s]
    assert len(steps) == len(operands) - 1
    for s, b in zip(steps, operands[1:]):
        m = re.fullmatch(r"(\d+)\+(\d+)=(\d+)", s) or re.fullmatch(r"(\d+) plus (\d+) is (\d+)", s)
        assert m, s
        x, y, z = map(int, m.groups())
        assert {x, y} == {acc, b} and z == x + y
        acc = z
    assert boxed == f"{acc}}}"
    return acc


@pytest.mark.parametrize("name", ["rl_train", "id", "hard", "ood"])
def test_solutions_evaluate_to_answer(name):
    import random

    rng = random.Random(1)
    for r in W.make_split(name, n=40):
        ops = [int(x) for x in r["problem"].split("+")]
        for text in (
            r["solution"],
            r["teacher_completion"],
            W.solution(ops, W.sample_styles(rng, len(ops) - 1, 0.5)),
        ):
            assert str(_eval_steps(text, ops)) == r["answer"]
            assert W.is_correct(text, r["answer"])
        assert r["prompt"] == r["problem"] + "="
        assert " plus " in r["teacher_completion"] and " plus " not in r["solution"]


def test_solutions_accepted_by_project_scorer():
    scoring = pytest.importorskip("tgpo.grading")
    for name in W.EVAL_SPLITS:
        for r in W.make_split(name, n=10):
            assert scoring.math_correct(r["solution"], r["answer"])
            assert scoring.math_correct(r["teacher_completion"], r["answer"])
            assert not scoring.math_correct(r["solution"], str(int(r["answer"]) + 1))


def test_step_starts():
    t = W.solution([3, 7, 5, 8], "STS")
    assert [t[i] for i in W.step_start_offsets(t)] == ["3", "5", "1"]


def test_dataset_columns():
    ds = W.as_dataset("rl_train", n=8, seed=0)
    assert {"id", "problem", "prompt", "answer", "teacher_completion"} <= set(ds.column_names)
    assert len(ds) == 8


def test_config_hash_and_names():
    assert C.config_hash(C.MODELS[C.TEACHER_IN]) != C.config_hash(C.MODELS[C.TEACHER_CROSS])
    t = C.get_model_config("teacher_t0.3")
    assert t.pretrain.t_share == 0.3 and t.pretrain.label_smoothing == 0.1
    assert C.get_model_config("teacher_t0.9").pretrain == C.MODELS[C.TEACHER_CROSS].pretrain
    assert C.MODELS[C.TEACHER_IN].pretrain.t_share == 0.0
    with pytest.raises(KeyError):
        C.get_model_config("nope")


# --------------------------------------------------------------------------- tokenizer
def test_tokenizer_roundtrip_and_save_load(tmp_path):
    from transformers import AutoTokenizer

    from tgpo.lab.tokenizer import BOXED, build_tokenizer

    tok = build_tokenizer()
    rows = W.make_split("id", n=20)
    texts = [r["prompt"] + r["solution"] for r in rows] + [
        r["prompt"] + r["teacher_completion"] for r in rows
    ]
    for t in texts:
        ids = tok(t)["input_ids"]
        assert tok.decode(ids) == t
        assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == t
        assert ids.count(tok.convert_tokens_to_ids(BOXED)) == 1
        assert len(ids) == len(t) - len(BOXED) + 1  # one token per character, \boxed{ is one token
    assert tok("3+4=")["input_ids"] == tok("3+4=", add_special_tokens=False)["input_ids"]  # nothing added
    assert {tok.eos_token, tok.pad_token, tok.bos_token} == {"<eos>", "<pad>", "<bos>"}
    assert len({tok.eos_token_id, tok.pad_token_id, tok.bos_token_id}) == 3
    tok.save_pretrained(tmp_path)
    from tgpo.lab.models import new_model

    new_model(C.MODELS[C.TINY_TEST], tok).config.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    assert tok2.get_vocab() == tok.get_vocab()
    for t in texts:
        assert tok2(t)["input_ids"] == tok(t)["input_ids"]
        assert tok2.decode(tok2(t)["input_ids"]) == t
    batch = tok2([r["prompt"] for r in W.make_split("ood", n=8)], padding=True)
    assert all(row[0] == tok2.pad_token_id or len(set(row)) for row in batch["input_ids"])


# --------------------------------------------------------------------------- build cache
def test_build_tiny_and_skip(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tgpo.cli import main
    from tgpo.lab import models as M

    # keep the test fast: measure on few problems
    monkeypatch.setattr(M, "measure", lambda model, tok, cfg, out=None: {"greedy": {"id": 0.0}})
    assert main(["lab", "build", "--only", C.TINY_TEST, "--out", str(tmp_path)]) == 0
    d = tmp_path / C.TINY_TEST
    for f in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "build_info.json",
    ):
        assert (d / f).exists(), f
    info = M.read_build_info(d)
    assert (
        info["config_hash"] == C.config_hash(C.MODELS[C.TINY_TEST])
        and info["seed"] == C.MODELS[C.TINY_TEST].seed
    )
    model = AutoModelForCausalLM.from_pretrained(d)
    tok = AutoTokenizer.from_pretrained(d)
    out = M.generate(model, tok, ["3+4+5+6="], max_new_tokens=5)
    assert isinstance(out[0], str)
    mtime = (d / "model.safetensors").stat().st_mtime_ns
    infos = M.build([C.TINY_TEST], out=tmp_path)
    assert infos[0]["skipped"] and (d / "model.safetensors").stat().st_mtime_ns == mtime
    # deterministic: a forced rebuild gives identical weights
    from safetensors.torch import load_file

    w1 = load_file(d / "model.safetensors")
    M.build([C.TINY_TEST], out=tmp_path, force=True)
    w2 = load_file(d / "model.safetensors")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_generate_batches_by_length_like_one_at_a_time():
    from tgpo.lab import models as M
    from tgpo.lab.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    model = M.new_model(C.MODELS[C.TINY_TEST], tok).eval()
    prompts = [r["prompt"] for r in W.make_split("ood", n=3)] + [r["prompt"] for r in W.make_split("hard", n=3)]
    batched = M.generate(model, tok, prompts, max_new_tokens=12)
    assert batched == [M.generate(model, tok, [p], max_new_tokens=12)[0] for p in prompts]
    sampled = M.generate(model, tok, prompts, temperature=1.0, max_new_tokens=12, seed=5)
    assert sampled == M.generate(model, tok, prompts, temperature=1.0, max_new_tokens=12, seed=5)


def test_greedy_evaluation_reproduces_the_stored_students_build_time_scores():
    """Generation must not change what a stored model scores: each student's greedy accuracy on the problems it was
    measured on at build time (the first 200 of each split) is the one its build_info.json records."""
    from tgpo.lab import models as M

    for name in (C.STUDENT, C.SMALL_STUDENT):
        model, tok = M.load(name)
        stored = M.read_build_info(M.model_path(name))["metrics"]["greedy"]
        for split in W.EVAL_SPLITS:
            rows = W.make_split(split, n=200)
            assert M.evaluate(model, tok, rows)["accuracy"] == pytest.approx(stored[split], abs=1e-9), (name, split)


def test_the_package_ships_its_lab_tasks():
    """``tgpo.lab.TASKS_DIR`` is the package's task folder, and lm-eval finds the lab group with its three tasks."""
    from lm_eval.tasks import TaskManager

    import tgpo.lab as lab

    manager = TaskManager(include_path=str(lab.TASKS_DIR / "lab"), include_defaults=False)
    assert set(lab.EVAL_TASKS) | {lab.EVAL_GROUP} <= set(manager.all_tasks)


def test_the_package_ships_its_lab_models_up_to_date():
    import tgpo
    from tgpo.lab import models as M

    zoo = M.default_models_dir()
    assert zoo.is_relative_to(Path(tgpo.__file__).parent)  # inside the package, not the repository
    for name in C.DEFAULT_MODELS:
        assert M.model_path(name) == zoo / name and M.is_built(C.MODELS[name], zoo), name


def test_every_stored_model_file_is_package_data():
    """pyproject's package-data globs for tgpo.lab cover every file of the stored models (a wheel carries them)."""
    from tgpo.lab import models as M

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    lab_dir = M.default_models_dir().parent
    patterns = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["tgpo.lab"]
    shipped = {p for pattern in patterns for p in lab_dir.glob(pattern) if p.is_file()}
    stored = {p for p in (lab_dir / M.ZOO).rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert stored and stored <= shipped


def test_models_dir_can_be_moved(tmp_path, monkeypatch):
    from tgpo.lab import models as M

    monkeypatch.setenv("TGPO_LAB_MODELS", str(tmp_path))
    assert M.default_models_dir() == tmp_path and M.model_path(C.STUDENT) == tmp_path / C.STUDENT


def test_lab_cli_names_a_missing_model_in_one_line(capsys, tmp_path):
    from tgpo.cli import main

    assert main(["lab", "eval", C.STUDENT, "--models-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"lab model '{C.STUDENT}' is not built in {tmp_path}" in err and len(err.splitlines()) == 1
    assert f"tgpo lab build --only {C.STUDENT} --models-dir {tmp_path}" in err
    assert main(["lab", "build", "--only", "nosuch", "--models-dir", str(tmp_path)]) == 2
    assert "unknown lab model 'nosuch'" in capsys.readouterr().err and not list(tmp_path.iterdir())


def _lab_error(capsys, argv) -> str:
    """``tgpo lab ARGV`` must fail with exit code 2 and one line on stderr (no traceback); returns the line."""
    from tgpo.cli import main

    assert main(["lab", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if "is deprecated" not in line]
    assert len(err) == 1, err
    return err[0]


def test_lab_cli_refuses_a_share_outside_0_1_in_one_line(capsys, tmp_path):
    err = _lab_error(capsys, ["build", "--only", "teacher_t7", "--models-dir", str(tmp_path)])
    assert "teacher_t7" in err and "[0, 1]" in err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("action", ["build", "list"])
def test_lab_cli_refuses_a_file_as_models_folder(capsys, tmp_path, action, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for option in ("--models-dir", "--out"):  # --out: the deprecated spelling
        err = _lab_error(capsys, [action, option, str(afile)])
        assert f"{afile} is a file, not a folder" in err and "--models-dir" in err
    monkeypatch.setenv("TGPO_LAB_MODELS", str(afile))
    err = _lab_error(capsys, [action])
    assert f"{afile} is a file, not a folder" in err and "$TGPO_LAB_MODELS" in err


def test_lab_eval_gives_advice_that_fits_the_input(capsys, tmp_path, monkeypatch):
    err = _lab_error(capsys, ["eval", "/no/such/path"])
    assert "/no/such/path does not exist" in err and "lab build" not in err
    err = _lab_error(capsys, ["eval", "nosuch"])
    assert "unknown lab model 'nosuch'" in err and "lab build" not in err
    monkeypatch.setenv("TGPO_LAB_MODELS", str(tmp_path))
    err = _lab_error(capsys, ["eval", C.STUDENT])
    assert "$TGPO_LAB_MODELS" in err and f"tgpo lab build --only {C.STUDENT}" in err


def test_lab_data_writes_rows_tgpo_train_reads(tmp_path, capsys):
    from tgpo.cli import main
    from tgpo.data import read_jsonl

    out = tmp_path / "new" / "lab.jsonl"
    assert main(["lab", "data", str(out), "--n", "50", "--seed", "3"]) == 0
    rows = read_jsonl(out, required=W.TRAIN_COLUMNS)
    assert len(rows) == 50 and all(set(r) == set(W.TRAIN_COLUMNS) for r in rows)
    assert all(W.is_correct(r["teacher_completion"], r["answer"]) for r in rows)
    assert rows == [{k: r[k] for k in W.TRAIN_COLUMNS} for r in W.make_split("rl_train", n=50, seed=3)]
    assert main(["lab", "data", str(tmp_path / "id.jsonl"), "--split", "id"]) == 0
    assert len(read_jsonl(tmp_path / "id.jsonl")) == W.WORLD.eval_size
    capsys.readouterr()
    assert "is a folder" in _lab_error(capsys, ["data", str(tmp_path)])


def test_lab_cli_runs_the_pinned_kernels_before_torch_loads():
    """``tgpo lab build/measure/eval/list`` set the lab jobs' kernel pin (tgpo.lab.kernels) before torch is imported,
    so a rebuilt model gets the same float32 arithmetic as the lab's training jobs; a user's own setting is kept."""
    import subprocess
    import sys

    from tgpo.lab.kernels import KERNEL_ENV

    script = (
        "import os, sys, warnings\n"
        "warnings.simplefilter('error')\n"  # pin() warns if torch was imported before it
        "from tgpo.cli import main\n"
        "assert 'torch' not in sys.modules\n"
        "assert main(['lab', 'list']) == 0\n"
        f"print(repr({{k: os.environ.get(k) for k in {sorted(KERNEL_ENV)!r}}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV}
    env["MKL_CBWR"] = "COMPATIBLE"  # the user's own choice wins
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    got = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr of a dict of strings
    assert got == {**KERNEL_ENV, "MKL_CBWR": "COMPATIBLE"}
