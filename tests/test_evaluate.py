"""tgpo eval: post-processing without a model, then end to end on the api and hf backends (faults and bad
input: tests/test_eval_faults.py; a wheel install: tests/test_eval_wheel.py)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tgpo.eval import report as ev
from tgpo.eval import run as eval_run
from tgpo.eval import settings

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "benchmarks"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

MATH = ["tgpo_math500", "tgpo_aime24", "tgpo_aime25", "tgpo_amc", "tgpo_minerva_math", "tgpo_olympiadbench"]
OOD = ["tgpo_gpqa_diamond", "tgpo_mmlu_pro", "tgpo_arc_challenge"]


def fake_results(scores: dict[str, float], repeats: dict[str, int], sizes: dict[str, int]) -> dict:
    res = {
        t: {"alias": t, "pass@1,none": s, "pass@k,none": min(1.0, 2 * s), "pass@1_authors,none": min(1.0, s + 0.1),
            "pass@k_authors,none": 1.0, "disagreement,none": 0.1}
        for t, s in scores.items()
    }
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
    assert rows["tgpo_paper"]["pass@1_authors"] == pytest.approx((6 * 1.0 + 3 * 0.1) / 9)
    assert rows["tgpo_paper"]["disagreement"] == pytest.approx(0.1)
    assert rows["tgpo_math"]["pass@1"] == 1.0 and rows["tgpo_ood"]["pass@1"] == 0.0
    assert rows["tgpo_aime24"]["pass@k"] == 1.0 and rows["tgpo_aime24"]["n_samples"] == 32
    assert rows["tgpo_aime24"]["pass@k_authors"] == 1.0
    assert rows["tgpo_math500"]["pass@k"] is None and rows["tgpo_math500"]["pass@k_authors"] is None
    assert rows["tgpo_math500"]["n_samples"] == 1
    assert rows["tgpo_math"]["n_samples"] is None and rows["tgpo_math"]["pass@k"] is None  # mixed k
    assert rows["tgpo_ood"]["n_samples"] == 1 and rows["tgpo_ood"]["n_problems"] == 198 + 1000 + 1172
    assert all(r["status"] == "complete" and r["missing"] == 0 for r in rows.values())
    names = [r["task"] for r in ev.summarise(fake_results(scores, repeats, sizes))]
    assert names[-3:] == ["tgpo_math", "tgpo_ood", "tgpo_paper"]
    text = ev.summary_csv(ev.summarise(fake_results(scores, repeats, sizes)))
    parsed = list(csv.DictReader(text.splitlines()))
    assert list(parsed[0]) == list(ev.SUMMARY_FIELDS)
    for field in ("pass@1_authors", "pass@k_authors", "disagreement", "status", "missing"):
        assert field in ev.SUMMARY_FIELDS
    assert parsed[0]["pass@k"] == "" and parsed[1]["pass@k"] == "1.000000"


def test_summarise_marks_incomplete_tasks_and_their_groups():
    scores = {t: 0.0 for t in MATH + OOD}
    rows = {r["task"]: r for r in ev.summarise(fake_results(scores, {}, dict.fromkeys(MATH + OOD, 3)), {"tgpo_amc": 2})}
    amc = rows["tgpo_amc"]
    assert amc["status"] == "incomplete" and amc["missing"] == 2
    assert all(amc[f] is None for f in ev.SCORE_FIELDS)  # never a complete-looking 0%
    for group in ("tgpo_math", "tgpo_paper"):
        assert rows[group]["status"] == "incomplete" and rows[group]["missing"] == 2 and rows[group]["pass@1"] is None
    assert rows["tgpo_ood"]["status"] == "complete" and rows["tgpo_ood"]["pass@1"] == 0.0
    line = next(r for r in csv.DictReader(ev.summary_csv(rows.values()).splitlines()) if r["task"] == "tgpo_amc")
    assert line["pass@1"] == "" and line["status"] == "incomplete" and line["missing"] == "2"


def test_comparison_table_uses_the_reference_file():
    ref = ev.load_paper_reference()
    luffy = [r for r in ref if r["model"] == "LUFFY-Qwen-Math-7B-Zero" and r["benchmark"] == "math500"]
    assert luffy and luffy[0]["score"] is not None
    rows = [{"task": "tgpo_math500", "pass@1": 0.5, "pass@k": None, "pass@1_authors": 0.625, "pass@k_authors": None,
             "disagreement": 0.125, "n_problems": 500, "n_samples": 1, "status": "complete", "missing": 0}]
    md = ev.comparison_table(rows, ref, model_label="Elliott/LUFFY-Qwen-Math-7B-Zero")
    header = md.splitlines()[0]
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[1].endswith("pass@1 (authors' rule)") and cols[2] == "ours pass@1 (strict)"
    assert cols[5] == "reported: LUFFY-Qwen-Math-7B-Zero (luffy)"  # the same model comes first
    cells = [c.strip() for c in md.splitlines()[2].strip("|").split("|")]
    assert cells[:5] == ["math500", "62.5", "50.0", "12.5", "500×1"] and cells[5] == f"{luffy[0]['score']:.1f}"
    assert "compared with the **authors' rule** column" in md and "paper_reference.csv" in md


def test_helpers():
    assert settings.model_slug("Elliott/LUFFY-Qwen-Math-7B-Zero") == "Elliott__LUFFY-Qwen-Math-7B-Zero"
    assert settings.parse_kv("a=1,b=x,c=None,d=0.5,e=true", "--x") == {"a": 1, "b": "x", "c": None, "d": 0.5, "e": True}
    with pytest.raises(settings.EvalInputError, match="--model-args"):
        settings.parse_kv("dtype=bfloat16,oops", "--model-args")
    assert settings.chat_url("http://h:1/v1") == "http://h:1/v1/chat/completions"
    assert settings.chat_url("http://h:1/v1/chat/completions/") == "http://h:1/v1/chat/completions"
    assert settings.check_limit(None) is None and settings.check_limit(3.0) == 3 and settings.check_limit(0.5) == 0.5


def test_help_explains_itself():
    out = subprocess.run(
        [sys.executable, "-m", "tgpo.cli", "eval", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0
    for flag in ("--model", "--backend", "--base-url", "--tasks", "--limit", "--num-samples", "--max-new-tokens",
                 "--max-model-len", "--max-retries", "--retry-wait", "--no-cache", "--output-dir"):
        assert flag in out.stdout
    assert "tgpo eval --model Elliott/LUFFY-Qwen-Math-7B-Zero --backend vllm" in out.stdout


def test_tasks_found_through_package_resources():
    from importlib.resources import files

    assert eval_run.tasks_dir() == Path(str(files("tgpo.tasks")))
    assert "REPO_ROOT" not in vars(eval_run) and "parents[1]" not in Path(eval_run.__file__).read_text()


# ------------------------------------------------------------------------------------------------------
# End to end
# ------------------------------------------------------------------------------------------------------


def _fixture_lookup(wrong_tasks=()):
    from stand_in_server import lookup_from_rows, wrong_answer

    import tgpo.tasks.utils as tu

    rows = {b: tu.benchmark_rows(b, FIXTURES) for b in tu.BENCHMARKS}
    lookup = lookup_from_rows(rows, tu.CHOICE_BENCHMARKS)
    for b in wrong_tasks:  # answer these benchmarks wrongly even in mode "right"
        for r in rows[b]:
            gold, kind = lookup[r["problem"]]
            lookup[r["problem"]] = (wrong_answer(gold, kind), kind)
    return lookup


def _run_api(tmp_path, monkeypatch, mode, extra=(), wrong_tasks=(), expect_rc=0, out=None, **server):
    from stand_in_server import StandInServer

    from tgpo.cli import main

    monkeypatch.setenv("TGPO_BENCHMARK_DIR", str(FIXTURES))
    out = out or tmp_path / mode
    with StandInServer(_fixture_lookup(wrong_tasks), mode=mode, **server) as srv:
        rc = main(
            ["eval", "--model", "stand-in", "--backend", "api", "--base-url", srv.base_url, "--output-dir", str(out),
             "--retry-wait", "0", *extra]
        )
        requests = list(srv.requests)
        unknown = srv.server.unknown
    assert rc == expect_rc and unknown == 0
    rows = {r["task"]: r for r in csv.DictReader((out / "summary.csv").open())}
    return out, rows, requests


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode,strict,authors_math,authors_choice",
    [
        ("right", 1.0, 1.0, 0.0),  # "ANSWER: C" lines: the authors' pipeline needs the letter boxed
        ("wrong", 0.0, 0.0, 0.0),
        ("truncated", 0.0, 1.0, 1.0),  # a think block that never closes: graded whole by their rule
    ],
)
def test_api_end_to_end(tmp_path, monkeypatch, mode, strict, authors_math, authors_choice):
    out, rows, requests = _run_api(tmp_path, monkeypatch, mode, ["--limit", "3", "--num-samples", "2", "--max-new-tokens", "64"])
    assert set(rows) == set(MATH + OOD + ["tgpo_math", "tgpo_ood", "tgpo_paper"])
    for task in MATH + OOD:
        r = rows[task]
        authors = authors_math if task in MATH else authors_choice
        assert float(r["pass@1"]) == strict and float(r["pass@k"]) == strict, task
        assert float(r["pass@1_authors"]) == authors and float(r["pass@k_authors"]) == authors, task
        assert float(r["disagreement"]) == abs(strict - authors), task
        assert r["n_samples"] == "2" and r["status"] == "complete" and r["missing"] == "0"
    assert rows["tgpo_math500"]["n_problems"] == "3" and rows["tgpo_paper"]["n_problems"] == "27"
    assert len(requests) == 27 * 2
    first = requests[0]
    assert first["messages"][0]["role"] == "system" and first["messages"][0]["content"].startswith("Your task is")
    assert first["messages"][-1]["role"] == "user"
    assert first["temperature"] == 0.6 and first["top_p"] == 1.0 and first["max_tokens"] == 64
    assert first.get("seed") is None  # repeats are not pinned to one seed
    results = json.loads((out / "results.json").read_text())
    assert "tgpo_paper" in results["results"]
    assert results["results"]["tgpo_aime24"]["pass@1_authors,none"] == authors_math  # lm-eval's own JSON has both
    assert "disagreement,none" in results["results"]["tgpo_paper"]
    assert (out / "samples_tgpo_aime24.jsonl").is_file() and (out / "summary.md").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["args"]["backend"] == "api" and "lm_eval" in manifest["versions"]
    md = (out / "summary.md").read_text()
    assert "reported: LUFFY-Qwen-Math-7B-Zero (luffy)" in md and "authors' rule" in md


@pytest.mark.slow
@pytest.mark.parametrize("mode,strict,authors", [("loose", 0.0, 1.0), ("boxed", 1.0, 1.0)])
def test_api_both_grades_as_a_new_user_sees_them(tmp_path, monkeypatch, mode, strict, authors):
    """A server answering in the authors' loose styles (no box, unclosed think) gets pass@1 0 and
    pass@1_authors 1; one answering in boxed form gets 1 on both."""
    _, rows, _ = _run_api(tmp_path, monkeypatch, mode, ["--limit", "1", "--num-samples", "2", "--max-new-tokens", "64"])
    for task, r in rows.items():
        assert float(r["pass@1"]) == strict and float(r["pass@1_authors"]) == authors, task


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


@pytest.mark.slow
def test_rerun_archives_earlier_outputs(tmp_path, monkeypatch):
    """A second run into the same folder moves the first one's files to previous/<UTC time>/: no stale
    samples of a task the new run did not evaluate stay beside the new summary."""
    out = tmp_path / "out"
    _run_api(tmp_path, monkeypatch, "right", ["--tasks", "tgpo_math500", "--limit", "1", "--num-samples", "1"], out=out)
    first = (out / "summary.csv").read_text()
    _run_api(tmp_path, monkeypatch, "right", ["--tasks", "tgpo_aime24", "--limit", "1", "--num-samples", "1"], out=out)
    assert not (out / "samples_tgpo_math500.jsonl").exists()
    archives = list((out / "previous").iterdir())
    assert len(archives) >= 1 and re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?", archives[-1].name)
    moved = [a for a in archives if (a / "summary.csv").exists()]
    assert len(moved) == 1 and (moved[0] / "summary.csv").read_text() == first
    assert (moved[0] / "samples_tgpo_math500.jsonl").is_file()


def _sampled_answers(srv_url: str, seed) -> str:
    import urllib.request

    body = json.dumps({"model": "m", "seed": seed, "messages": [{"role": "user", "content": "What is $100 + 42$?"}]})
    req = urllib.request.Request(srv_url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["choices"][0]["message"]["content"]


@pytest.mark.slow
def test_repeats_are_independent_through_plain_lm_eval(monkeypatch):
    """``lm_eval --include_path tasks`` with lm-eval's own API model: lm-eval would send seed 1234 with every
    request, and a server that honours seeds answers the k repeats identically. The tasks send seed null."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from stand_in_server import StandInServer

    monkeypatch.setenv("TGPO_BENCHMARK_DIR", str(FIXTURES))
    with StandInServer(_fixture_lookup(), mode="sampled") as srv:
        assert _sampled_answers(srv.base_url, 1234) == _sampled_answers(srv.base_url, 1234)  # it honours seeds
        assert _sampled_answers(srv.base_url, 1) != _sampled_answers(srv.base_url, 2)
        results = simple_evaluate(
            model="local-chat-completions",
            model_args={"model": "stand-in", "base_url": srv.base_url, "num_concurrent": 4},
            tasks=["tgpo_aime24"],
            limit=1,
            apply_chat_template=True,
            log_samples=True,
            task_manager=TaskManager(include_path=str(eval_run.tasks_dir()), include_defaults=False),
        )
        seeds = [r.get("seed", "absent") for r in srv.requests[4:]]
    answers = results["samples"]["tgpo_aime24"][0]["resps"][0]
    assert len(answers) == 32 and len(set(answers)) > 16
    assert seeds == [None] * 32


@pytest.mark.slow
def test_repeats_stay_independent_through_the_request_cache(tmp_path, monkeypatch):
    """tgpo eval caches every sample under its own repeat index: a resumed run gets k different answers back,
    not one answer k times (lm-eval's --use_cache keys on the request alone and skips sampled requests)."""
    out = tmp_path / "out"
    args = ["--tasks", "tgpo_aime24", "--limit", "1", "--num-samples", "8"]
    # an incomplete first run (every other request fails, no retries) leaves the cache to resume from
    _run_api(tmp_path, monkeypatch, "sampled", [*args, "--max-retries", "0"], out=out, expect_rc=1, fault="http500_alternate")
    _, _, requests = _run_api(tmp_path, monkeypatch, "sampled", args, out=out)
    answers = json.loads((out / "samples_tgpo_aime24.jsonl").read_text().splitlines()[0])["resps"][0]
    assert len(answers) == 8 and len(set(answers)) == 8
    assert 0 < len(requests) < 8  # only the missing ones were sent


def _tiny_model(path: Path, positions: int = 2048) -> Path:
    """A tiny chat-templated model (tgpo.testing's character vocabulary) with ``positions`` context."""
    from tgpo.testing import build_model, build_tokenizer

    tok = build_tokenizer()
    build_model(tok, max_positions=positions).save_pretrained(path)
    tok.save_pretrained(path)
    return path


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


@pytest.mark.slow
def test_context_guard_stops_a_model_too_short(tmp_path, monkeypatch, capsys):
    """The authors' system prompt alone is ~900 characters: on a 256-position character-level model the prompt
    does not fit, and lm-eval would cut it from the left. tgpo eval stops before generating, in one line."""
    from tgpo.cli import main

    model = _tiny_model(tmp_path / "short", positions=256)
    monkeypatch.setenv("TGPO_BENCHMARK_DIR", str(FIXTURES))
    argv = ["eval", "--model", str(model), "--backend", "hf", "--tasks", "tgpo_math500", "--limit", "1",
            "--num-samples", "1", "--device", "cpu", "--output-dir", str(tmp_path / "out")]
    capsys.readouterr()
    assert main([*argv, "--max-new-tokens", "16"]) == 2
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("tgpo eval:")]
    assert len(ours) == 1 and "Traceback" not in err
    line = ours[0]
    assert str(model) in line and "context of 256 tokens" in line and "--max-new-tokens" in line and "--max-model-len" in line
    prompt_tokens = int(re.search(r"has (\d+) tokens", line).group(1))
    assert prompt_tokens > 256
    assert not (tmp_path / "out" / "summary.csv").exists()
    # what the message says fixes it: a longer context (the tiny model's rotary positions allow it)
    assert main([*argv, "--max-new-tokens", "4", "--max-model-len", str(prompt_tokens + 4)]) == 0
    assert (tmp_path / "out" / "summary.csv").is_file()


def test_check_context_is_the_vllm_guard_too():
    """The guard both backends run (vLLM cannot run here): the longest prompt plus its budget against
    ``max_length``; lm-eval's vLLM path would otherwise cut ``list(range(300))`` to ``[]`` for 8192 new tokens."""
    from types import SimpleNamespace

    from tgpo.eval.backends import ContextTooLong, check_context

    lm = SimpleNamespace(max_length=4096, max_gen_toks=256, tok_encode=lambda text: list(range(len(text))))
    requests = [SimpleNamespace(args=("x" * n, {"max_gen_toks": 8192}), task_name=f"t{n}") for n in (100, 300, 50)]
    with pytest.raises(ContextTooLong) as err:
        check_context(lm, requests, "Qwen/Qwen2.5-Math-7B")
    message = str(err.value)
    assert "Qwen/Qwen2.5-Math-7B has a context of 4096 tokens" in message and "(t300) has 300 tokens" in message
    assert "--max-new-tokens is 8192" in message and "lower --max-new-tokens to 3796" in message and "--max-model-len" in message
    check_context(lm, [SimpleNamespace(args=("x" * 300, {"max_gen_toks": 3796}), task_name="t")], "m")  # fits exactly
