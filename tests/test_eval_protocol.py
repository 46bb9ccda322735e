"""tgpo eval runs exactly the protocol on every backend and says how it ran (issue 22): every sampling setting
explicit (a checkpoint's generation config or a server's defaults change nothing), the manifest and summary.md,
lab models out of the box, the Python API, lm-eval's habits, resumable local evals."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tgpo.eval import protocol

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIXTURES = HERE / "fixtures" / "benchmarks"
STUDENT = REPO / "tgpo" / "lab" / "zoo" / "student"
#: What a checkpoint's generation_config.json may set and the protocol must override (the issue's test).
HOSTILE = {"max_new_tokens": 8, "top_k": 1, "repetition_penalty": 3.0, "no_repeat_ngram_size": 2}

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

PAPER_YAML = {"until": [], "do_sample": True, "temperature": 0.6, "top_p": 1.0, "max_gen_toks": 8192, "seed": None}
LAB_YAML = {"until": ["<eos>"], "do_sample": False, "max_gen_toks": 128}


# ------------------------------------------------------------------------------------------------------
# The settings each backend receives (no model needed; vLLM is not installed here)
# ------------------------------------------------------------------------------------------------------


def test_effective_settings_set_every_field():
    paper = protocol.effective_settings(PAPER_YAML, {})
    assert list(paper)[: len(protocol.FIELDS)] == list(protocol.FIELDS)
    assert paper == {"do_sample": True, "temperature": 0.6, "top_p": 1.0, "top_k": 0, "min_p": 0.0,
                     "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
                     "max_gen_toks": 8192, "until": [], "seed": None}
    lab = protocol.effective_settings(LAB_YAML, {"max_gen_toks": 64})
    assert lab["do_sample"] is False and lab["temperature"] == 0.0 and lab["max_gen_toks"] == 64
    assert protocol.effective_settings(PAPER_YAML, {"temperature": 0.0})["do_sample"] is False
    assert protocol.effective_settings(LAB_YAML, {"temperature": 0.7})["do_sample"] is True


def test_vllm_sampling_params_name_every_field():
    """Every field of vLLM's SamplingParams that changes what is sampled is set, so the engine's defaults from the
    checkpoint's generation config never apply."""
    params = protocol.vllm_sampling_kwargs(protocol.effective_settings(PAPER_YAML, {"top_k": 20}))
    assert params == {"max_tokens": 8192, "stop": [], "temperature": 0.6, "top_p": 1.0, "top_k": 20, "min_p": 0.0,
                      "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "seed": None,
                      "skip_special_tokens": False, "spaces_between_special_tokens": False}
    greedy = protocol.vllm_sampling_kwargs(protocol.effective_settings(LAB_YAML, {}))
    assert greedy["temperature"] == 0.0 and greedy["top_k"] == -1 and greedy["stop"] == ["<eos>"]
    api = protocol.api_fields(protocol.effective_settings(PAPER_YAML, {}))
    assert {"max_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
            "frequency_penalty", "stop", "seed"} == set(api)


def test_hf_generate_kwargs_carry_the_budget_and_sampling():
    kw = protocol.hf_generate_kwargs(protocol.effective_settings(PAPER_YAML, {}), max_new_tokens=100)
    assert kw == {"max_new_tokens": 100, "do_sample": True, "repetition_penalty": 1.0, "temperature": 0.6,
                  "top_p": 1.0, "top_k": 0}
    assert protocol.hf_generate_kwargs(protocol.effective_settings(LAB_YAML, {}), 5) == {
        "max_new_tokens": 5, "do_sample": False, "repetition_penalty": 1.0}


def test_deviations_and_the_protocol_line():
    from tgpo.eval.report import protocol_line

    settings = {"tgpo_aime24": protocol.effective_settings(PAPER_YAML, {"max_gen_toks": 64})}
    paper = {"tgpo_aime24": protocol.effective_settings(PAPER_YAML, {})}
    found = protocol.deviations(limit=3, backend="hf", chat_template=False, settings=settings,
                                repeats={"tgpo_aime24": (2, 32)}, paper=paper)
    text = protocol_line(found)
    for part in ("limit 3 problems", "tgpo_aime24: 2 samples per problem (protocol: 32)", "chat template off",
                 "budget 64 (protocol: 8192)", "backend hf", "**not comparable**"):
        assert part in text, part
    assert protocol_line([]).startswith("**Protocol:** the paper's")
    only_backend = protocol.deviations(limit=None, backend="api", chat_template=True, settings=paper,
                                       repeats={"tgpo_aime24": (32, 32)}, paper=paper)
    assert "backend api" in protocol_line(only_backend) and "not comparable" not in protocol_line(only_backend)


def test_a_task_without_the_authors_rule_says_so():
    from tgpo.eval.report import comparison_table

    rows = [{"task": "tgpo_lab_id", "pass@1": 0.45, "pass@k": None, "pass@1_authors": None, "pass@k_authors": None,
             "disagreement": None, "n_problems": 20, "n_samples": 1, "status": "complete", "missing": 0}]
    cells = [c.strip() for c in comparison_table(rows, []).splitlines()[2].strip("|").split("|")]
    assert cells[:3] == ["lab_id", "no authors' rule (one grade)", "45.0"]


# ------------------------------------------------------------------------------------------------------
# lm-eval's habits, the task list, one-line errors
# ------------------------------------------------------------------------------------------------------


def test_lm_eval_spellings_are_accepted(tmp_path):
    from tgpo.cli import build_parser
    from tgpo.eval.cli import settings_from_args

    argv = ["eval", "--model", "m", "--model_args", "dtype=float32", "--output_path", str(tmp_path),
            "--log_samples", "--gen_kwargs", "top_k=5", "--include_path", str(tmp_path), "--batch_size", "4"]
    s = settings_from_args(build_parser(argv).parse_args(argv))
    assert s.model_args == "dtype=float32" and Path(s.output_dir) == tmp_path and s.batch_size == "4"
    assert s.overrides() == {"top_k": 5} and Path(s.include_path) == tmp_path


def test_list_tasks_names_the_lab_tasks(capsys):
    from tgpo.cli import main

    assert main(["eval", "--list-tasks"]) == 0
    listed = capsys.readouterr().out.split("\n")
    for name in ("tgpo_lab_id", "tgpo_lab_hard", "tgpo_lab_ood", "tgpo_aime24"):
        assert name in listed
    assert "tgpo_lab  (group)" in listed and "tgpo_paper  (group)" in listed


@pytest.mark.parametrize("argv,expected", [
    ([], "--model is required"),
    (["--model", "/no/such/model"], "cannot load the tokenizer of /no/such/model"),
    (["--model", "m", "--backend", "hf", "--presence-penalty", "0.5"], "--presence-penalty"),
    (["--model", "m", "--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--model", "m", "--gen-kwargs", "oops"], "--gen-kwargs: expected k=v"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, expected):
    from tgpo.cli import main

    capsys.readouterr()
    rc = main(["eval", *argv, "--output-dir", str(tmp_path / "out"), "--tasks", "tgpo_lab_id"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err


def test_no_code_calls_a_cli_main_with_an_argv_list():
    """tgpo eval and repro go through tgpo.eval.evaluate (and the library's own functions), never a CLI main."""
    offenders = [f"{p.relative_to(REPO)}:{n}" for folder in ("tgpo", "repro") for p in sorted((REPO / folder).rglob("*.py"))
                 for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"main\(\[|cli\.main\(", line)]
    assert not offenders


# ------------------------------------------------------------------------------------------------------
# End to end: a checkpoint's generation config and a server's defaults change nothing
# ------------------------------------------------------------------------------------------------------


def _hostile_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "student_hostile"
    shutil.copytree(STUDENT, copy)
    config = json.loads((copy / "generation_config.json").read_text())
    (copy / "generation_config.json").write_text(json.dumps(config | HOSTILE))
    return copy


def _samples(out: Path, task: str) -> list:
    return [(d["doc_id"], d["resps"], d["pass@1"]) for d in map(json.loads, (out / f"samples_{task}.jsonl").open())]


@pytest.mark.slow
def test_hf_generation_config_changes_nothing(tmp_path, capsys):
    """The issue's test: the student and a copy whose generation config sets max_new_tokens=8, top_k=1,
    repetition_penalty=3.0 and no_repeat_ngram_size=2 generate and score identically; the copy's fields are named
    once and recorded; the manifest's settings have no gap."""
    import pandas as pd

    from tgpo.eval import evaluate

    runs = {}
    for name, model in (("plain", STUDENT), ("hostile", _hostile_copy(tmp_path))):
        capsys.readouterr()
        runs[name] = evaluate(str(model), "tgpo_lab_id", limit=10, device="cpu", output_dir=tmp_path / name)
        runs[name + "_err"] = capsys.readouterr().err
    plain, hostile = runs["plain"], runs["hostile"]
    assert plain.status == hostile.status == 0 and isinstance(hostile.scores, pd.DataFrame)
    assert _samples(plain.output_dir, "tgpo_lab_id") == _samples(hostile.output_dir, "tgpo_lab_id")
    assert max(len(r[1][0][0]) for r in _samples(plain.output_dir, "tgpo_lab_id")) > 8  # longer than 8 tokens allow
    pd.testing.assert_frame_equal(plain.scores, hostile.scores)
    named = [line for line in runs["hostile_err"].splitlines() if "generation_config.json" in line]
    assert len(named) == 1 and all(f"{k}={v}" in named[0] for k, v in HOSTILE.items())
    manifest = hostile.manifest
    assert manifest["checkpoint_generation_config_ignored"].items() >= HOSTILE.items()
    settings = manifest["generation"]["tgpo_lab_id"]
    assert None not in settings.values() and settings["max_gen_toks"] == 128 and settings["top_k"] == 0
    assert {"math-verify", "latex2sympy2_extended"} <= set(manifest["grader_versions"])
    assert json.loads((hostile.output_dir / "manifest.json").read_text())["generation"] == manifest["generation"]
    assert {p.name for p in hostile.paths} >= {"summary.csv", "summary.md", "manifest.json"}


@pytest.mark.slow
def test_api_server_defaults_change_nothing(tmp_path):
    """A server that fills omitted fields from a generation config (max_tokens 8, top_k 1, repetition penalty 3)
    scores exactly as one without: every field is sent; what the server echoes is recorded."""
    from stand_in_server import StandInServer, lookup_from_rows

    import tgpo.tasks.utils as tu
    from tgpo.eval import evaluate

    os.environ["TGPO_BENCHMARK_DIR"] = str(FIXTURES)
    lookup = lookup_from_rows({b: tu.benchmark_rows(b, FIXTURES) for b in tu.BENCHMARKS}, tu.CHOICE_BENCHMARKS)
    scores = {}
    for name, defaults in (("plain", {}), ("defaults", {"max_tokens": 8, "top_k": 1, "repetition_penalty": 3.0})):
        with StandInServer(lookup, generation_defaults=defaults, echo=True) as srv:
            result = evaluate("stand-in", "tgpo_math500,tgpo_gpqa_diamond", backend="api", base_url=srv.base_url,
                              limit=2, num_samples=2, max_new_tokens=4096, retry_wait=0, output_dir=tmp_path / name)
        assert result.status == 0
        scores[name] = result.scores
        echoed = result.manifest["requests"]["server_echoed"]
        assert echoed["max_tokens"] == 4096 and echoed["top_k"] == -1 and echoed["repetition_penalty"] == 1.0
        assert echoed["temperature"] == 0.6 and echoed["top_p"] == 1.0
    assert scores["plain"].equals(scores["defaults"])
    assert (scores["plain"].set_index("task")["pass@1"] == 1.0).all()


@pytest.mark.slow
def test_a_lab_model_evaluates_out_of_the_box(tmp_path):
    """`tgpo eval --model tgpo/lab/zoo/student --tasks tgpo_lab_id --limit 20`: no flag needed (the plain prompt,
    said in one line), a protocol line in summary.md, no traceback."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "tgpo.cli", "eval", "--model", "tgpo/lab/zoo/student", "--tasks",
                           "tgpo_lab_id", "--limit", "20", "--output-dir", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = [line for line in proc.stderr.splitlines() if line.startswith("tgpo eval:")]
    assert "Traceback" not in proc.stderr and any("has no chat template" in line for line in ours)
    rows = {r["task"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["tgpo_lab_id"]["status"] == "complete" and rows["tgpo_lab_id"]["n_problems"] == "20"
    md = (out / "summary.md").read_text()
    assert "**Protocol:** no reported numbers" in md and "limit 20" in md and "no authors' rule" in md


@pytest.mark.slow
def test_a_killed_hf_eval_resumes_without_regenerating(tmp_path, monkeypatch):
    """Interrupted after its first chunk of answers (batch 2: 8 per chunk), an hf eval rerun into the same folder
    generates only the 12 missing of 20, and ends with the answers an uninterrupted run gives."""
    from lm_eval.models.huggingface import HFLM

    from tgpo.eval import EvalInterrupted, evaluate

    real = HFLM.generate_until
    generated = []

    def counting(self, requests, disable_tqdm=False):
        if fail_after is not None and len(generated) >= fail_after:
            raise KeyboardInterrupt  # what a kill or Ctrl-C does mid-run
        generated.append(len(requests))
        return real(self, requests, disable_tqdm=disable_tqdm)

    monkeypatch.setattr(HFLM, "generate_until", counting)
    out = tmp_path / "out"
    options = dict(limit=20, device="cpu", batch_size=2, output_dir=out)
    fail_after = 1
    with pytest.raises(EvalInterrupted, match="8 answers kept"):
        evaluate(str(STUDENT), "tgpo_lab_id", **options)
    assert generated == [8] and not (out / "summary.csv").exists()
    generated.clear()
    fail_after = None
    resumed = evaluate(str(STUDENT), "tgpo_lab_id", **options)
    assert resumed.status == 0 and sum(generated) == 12
    assert resumed.manifest["requests"]["sent"] == 12 and resumed.manifest["requests"]["from_cache"] == 8
    generated.clear()
    fresh = evaluate(str(STUDENT), "tgpo_lab_id", **{**options, "output_dir": tmp_path / "fresh"})
    assert sum(generated) == 20 and _samples(out, "tgpo_lab_id") == _samples(fresh.output_dir, "tgpo_lab_id")


@pytest.mark.slow
def test_wandb_logger_offline(tmp_path, monkeypatch):
    """--wandb_args goes through lm-eval's WandbLogger; offline, the run lands in WANDB_DIR."""
    pytest.importorskip("wandb")
    from stand_in_server import StandInServer, lookup_from_rows

    import tgpo.tasks.utils as tu
    from tgpo.cli import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("TGPO_BENCHMARK_DIR", str(FIXTURES))
    lookup = lookup_from_rows({b: tu.benchmark_rows(b, FIXTURES) for b in tu.BENCHMARKS}, tu.CHOICE_BENCHMARKS)
    with StandInServer(lookup) as srv:
        rc = main(["eval", "--model", "stand-in", "--backend", "api", "--base-url", srv.base_url, "--tasks",
                   "tgpo_math500", "--limit", "2", "--output-dir", str(tmp_path / "out"), "--retry-wait", "0",
                   "--wandb_args", "project=tgpo-test,name=stand-in-eval"])
    assert rc == 0
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


@pytest.mark.slow
def test_hf_hub_log_args_go_through_lm_evals_evaluation_tracker(tmp_path):
    """--hf_hub_log_args builds lm-eval's EvaluationTracker: with pushing off it saves lm-eval's own results and
    samples files under <output-dir>/lm_eval (the Hub is not reachable here)."""
    from stand_in_server import StandInServer, lookup_from_rows

    import tgpo.tasks.utils as tu
    from tgpo.eval import evaluate

    os.environ["TGPO_BENCHMARK_DIR"] = str(FIXTURES)
    lookup = lookup_from_rows({b: tu.benchmark_rows(b, FIXTURES) for b in tu.BENCHMARKS}, tu.CHOICE_BENCHMARKS)
    with StandInServer(lookup) as srv:
        result = evaluate("stand-in", "tgpo_math500", backend="api", base_url=srv.base_url, limit=2, retry_wait=0,
                          output_dir=tmp_path / "out", hf_hub_log_args="push_results_to_hub=False")
    assert result.status == 0
    saved = sorted(p.name for p in (tmp_path / "out" / "lm_eval").rglob("*.json*"))
    assert any(n.startswith("results_") for n in saved) and any(n.startswith("samples_tgpo_math500") for n in saved)
