"""tgpo eval: post-processing without a model, then end to end on the api and hf backends."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tgpo import evaluate as ev

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "benchmarks"
sys.path.insert(0, str(HERE))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

MATH = ["tgpo_math500", "tgpo_aime24", "tgpo_aime25", "tgpo_amc", "tgpo_minerva_math", "tgpo_olympiadbench"]
OOD = ["tgpo_gpqa_diamond", "tgpo_mmlu_pro", "tgpo_arc_challenge"]


def fake_results(scores: dict[str, float], repeats: dict[str, int], sizes: dict[str, int]) -> dict:
    res = {t: {"alias": t, "pass@1,none": s, "pass@k,none": min(1.0, 2 * s)} for t, s in scores.items()}
    for g in ("tgpo_math", "tgpo_ood", "tgpo_paper"):
        res[g] = {"alias": g, "pass@1,none": 0.123}  # whatever lm-eval computed; summarise recomputes
    return {
        "results": res,
        "group_subtasks": {"tgpo_paper": ["tgpo_math", "tgpo_ood"], "tgpo_math": MATH, "tgpo_ood": OOD},
        "configs": {t: {"repeats": repeats.get(t, 1)} for t in scores},
        "n-samples": {t: {"original": sizes[t], "effective": sizes[t]} for t in scores},
    }


def test_summarise_unweighted_means():
    scores = {t: 1.0 for t in MATH} | {t: 0.0 for t in OOD}
    sizes = {t: 10 for t in MATH} | {"tgpo_gpqa_diamond": 198, "tgpo_mmlu_pro": 1000, "tgpo_arc_challenge": 1172}
    repeats = {"tgpo_aime24": 32, "tgpo_aime25": 32, "tgpo_amc": 32}
    rows = {r["task"]: r for r in ev.summarise(fake_results(scores, repeats, sizes))}
    assert rows["tgpo_paper"]["pass@1"] == pytest.approx(6 / 9)  # mean of nine, not of the two groups
    assert rows["tgpo_math"]["pass@1"] == 1.0 and rows["tgpo_ood"]["pass@1"] == 0.0
    assert rows["tgpo_aime24"]["pass@k"] == 1.0 and rows["tgpo_aime24"]["n_samples"] == 32
    assert rows["tgpo_math500"]["pass@k"] is None and rows["tgpo_math500"]["n_samples"] == 1
    assert rows["tgpo_math"]["n_samples"] is None and rows["tgpo_math"]["pass@k"] is None  # mixed k
    assert rows["tgpo_ood"]["n_samples"] == 1 and rows["tgpo_ood"]["n_problems"] == 198 + 1000 + 1172
    names = [r["task"] for r in ev.summarise(fake_results(scores, repeats, sizes))]
    assert names[-3:] == ["tgpo_math", "tgpo_ood", "tgpo_paper"]
    text = ev.summary_csv(ev.summarise(fake_results(scores, repeats, sizes)))
    parsed = list(csv.DictReader(text.splitlines()))
    assert list(parsed[0]) == list(ev.SUMMARY_FIELDS)
    assert parsed[0]["pass@k"] == "" and parsed[1]["pass@k"] == "1.000000"


def test_comparison_table_uses_the_reference_file():
    ref = ev.load_paper_reference()
    luffy = [r for r in ref if r["model"] == "LUFFY-Qwen-Math-7B-Zero" and r["benchmark"] == "math500"]
    assert luffy and luffy[0]["score"] is not None
    rows = [{"task": "tgpo_math500", "pass@1": 0.5, "pass@k": None, "n_problems": 500, "n_samples": 1}]
    md = ev.comparison_table(rows, ref, model_label="Elliott/LUFFY-Qwen-Math-7B-Zero")
    header = md.splitlines()[0]
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[3] == "reported: LUFFY-Qwen-Math-7B-Zero (luffy)"  # the same model comes first
    cells = [c.strip() for c in md.splitlines()[2].strip("|").split("|")]
    assert cells[0] == "math500" and cells[1] == "50.0" and cells[2] == "500×1" and cells[3] == f"{luffy[0]['score']:.1f}"
    assert "reported" in md and "paper_reference.csv" in md


def test_helpers():
    assert ev.model_slug("Elliott/LUFFY-Qwen-Math-7B-Zero") == "Elliott__LUFFY-Qwen-Math-7B-Zero"
    assert ev.parse_kv("a=1,b=x,c=None,d=0.5,e=true") == {"a": 1, "b": "x", "c": None, "d": 0.5, "e": True}
    assert ev.chat_url("http://h:1/v1") == "http://h:1/v1/chat/completions"
    assert ev.chat_url("http://h:1/v1/chat/completions/") == "http://h:1/v1/chat/completions"


def test_help_explains_itself():
    out = subprocess.run(
        [sys.executable, "-m", "tgpo.cli", "eval", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0
    for flag in ("--model", "--backend", "--base-url", "--tasks", "--limit", "--num-samples", "--max-new-tokens", "--output-dir"):
        assert flag in out.stdout
    assert "tgpo eval --model Elliott/LUFFY-Qwen-Math-7B-Zero --backend vllm" in out.stdout


# ------------------------------------------------------------------------------------------------------
# End to end
# ------------------------------------------------------------------------------------------------------


def _fixture_lookup(wrong_tasks=()):
    from stand_in_server import lookup_from_rows, wrong_answer

    sys.path.insert(0, str(HERE.parent / "tasks"))
    import importlib

    tu = importlib.import_module("utils")
    old = os.environ.get("TGPO_BENCHMARK_DIR")
    os.environ["TGPO_BENCHMARK_DIR"] = str(FIXTURES)
    try:
        rows = {b: tu.benchmark_rows(b) for b in tu.BENCHMARKS}
    finally:
        if old is None:
            os.environ.pop("TGPO_BENCHMARK_DIR")
        else:
            os.environ["TGPO_BENCHMARK_DIR"] = old
    lookup = lookup_from_rows(rows, tu.CHOICE_BENCHMARKS)
    for b in wrong_tasks:  # answer these benchmarks wrongly even in mode "right"
        for r in rows[b]:
            gold, kind = lookup[r["problem"]]
            lookup[r["problem"]] = (wrong_answer(gold, kind), kind)
    return lookup


def _run_api(tmp_path, monkeypatch, mode, extra=(), wrong_tasks=()):
    from stand_in_server import StandInServer

    from tgpo.cli import main

    monkeypatch.setenv("TGPO_BENCHMARK_DIR", str(FIXTURES))
    out = tmp_path / mode
    with StandInServer(_fixture_lookup(wrong_tasks), mode=mode) as srv:
        rc = main(
            ["eval", "--model", "stand-in", "--backend", "api", "--base-url", srv.base_url, "--output-dir", str(out), *extra]
        )
        requests = list(srv.requests)
        unknown = srv.server.unknown
    assert rc == 0 and unknown == 0
    rows = {r["task"]: r for r in csv.DictReader((out / "summary.csv").open())}
    return out, rows, requests


@pytest.mark.slow
@pytest.mark.parametrize("mode,expected", [("right", 1.0), ("wrong", 0.0), ("truncated", 0.0)])
def test_api_end_to_end(tmp_path, monkeypatch, mode, expected):
    out, rows, requests = _run_api(tmp_path, monkeypatch, mode, ["--limit", "3", "--num-samples", "2", "--max-new-tokens", "64"])
    assert set(rows) == set(MATH + OOD + ["tgpo_math", "tgpo_ood", "tgpo_paper"])
    for task, r in rows.items():
        assert float(r["pass@1"]) == expected, task
        assert r["n_samples"] == "2" and float(r["pass@k"]) == expected
    assert rows["tgpo_math500"]["n_problems"] == "3" and rows["tgpo_paper"]["n_problems"] == "27"
    assert len(requests) == 27 * 2
    first = requests[0]
    assert first["messages"][0]["role"] == "system" and first["messages"][0]["content"].startswith("Your task is")
    assert first["messages"][-1]["role"] == "user"
    assert first["temperature"] == 0.6 and first["top_p"] == 1.0 and first["max_tokens"] == 64
    assert first.get("seed") is None  # repeats are not pinned to one seed
    results = json.loads((out / "results.json").read_text())
    assert "tgpo_paper" in results["results"]
    assert (out / "samples_tgpo_aime24.jsonl").is_file() and (out / "summary.md").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["args"]["backend"] == "api" and "lm_eval" in manifest["versions"]
    md = (out / "summary.md").read_text()
    assert "reported: LUFFY-Qwen-Math-7B-Zero (luffy)" in md


@pytest.mark.slow
def test_api_group_means_are_unweighted_over_nine(tmp_path, monkeypatch):
    # math right, OOD wrong, no --limit (ARC has 4 fixture rows, the others 3): the paper average is the
    # mean of the nine task scores (6/9), not of the two groups (1/2) nor weighted by size (18/28)
    out, rows, _ = _run_api(tmp_path, monkeypatch, "right", ["--num-samples", "1"], wrong_tasks=("gpqa_diamond", "mmlu_pro", "arc_challenge"))
    assert float(rows["tgpo_paper"]["pass@1"]) == pytest.approx(6 / 9, abs=1e-6)
    assert float(rows["tgpo_math"]["pass@1"]) == 1.0 and float(rows["tgpo_ood"]["pass@1"]) == 0.0
    assert rows["tgpo_arc_challenge"]["n_problems"] == "4"
    results = json.loads((out / "results.json").read_text())["results"]
    assert results["tgpo_paper"]["pass@1,none"] == pytest.approx(6 / 9, abs=1e-6)  # lm-eval agrees


def _tiny_model(path: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "The answer is \\boxed{42}. ANSWER: C. Let me think step by step about the problem.",
        "<think> reasoning </think> So the final answer is $\\frac{1}{2}$.",
    ]
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(cfg).save_pretrained(path)


@pytest.mark.slow
def test_hf_end_to_end_tiny_model(tmp_path, monkeypatch):
    from tgpo.cli import main

    model_dir = tmp_path / "tiny"
    _tiny_model(model_dir)
    monkeypatch.setenv("TGPO_BENCHMARK_DIR", str(FIXTURES))
    out = tmp_path / "out"
    rc = main(
        ["eval", "--model", str(model_dir), "--backend", "hf", "--limit", "2", "--num-samples", "2",
         "--max-new-tokens", "16", "--output-dir", str(out), "--device", "cpu"]
    )
    assert rc == 0
    rows = {r["task"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert set(rows) == set(MATH + OOD + ["tgpo_math", "tgpo_ood", "tgpo_paper"])
    for r in rows.values():
        assert 0.0 <= float(r["pass@1"]) <= 1.0
    assert rows["tgpo_paper"]["n_problems"] == "18" and rows["tgpo_aime24"]["n_samples"] == "2"
    sample = json.loads((out / "samples_tgpo_aime24.jsonl").read_text().splitlines()[0])
    assert len(sample["resps"][0]) == 2  # both repeats reached process_results
