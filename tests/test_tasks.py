"""tasks/: loaders, the pass@k scorer, the YAMLs, and gold acceptance on the benchmark files."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from tgpo.scoring import choice_correct, math_correct, warmup

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "tasks"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmarks"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _load_utils():
    spec = importlib.util.spec_from_file_location("tgpo_tasks_utils", TASKS / "utils.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


U = _load_utils()


def _shared_file(name: str) -> Path:
    if not os.environ.get("TGPO_BENCHMARK_DIR"):
        pytest.skip("TGPO_BENCHMARK_DIR is not set: the authors' benchmark files are not available")
    path = Path(os.environ["TGPO_BENCHMARK_DIR"]) / name
    if not path.is_file():
        pytest.skip(f"{path} does not exist")
    return path


def test_system_prompt_is_the_authors():
    assert U.SYSTEM_PROMPT.startswith("Your task is to follow a systematic")
    assert U.SYSTEM_PROMPT == json.loads(_shared_file("system_prompt.json").read_text())["system_prompt"]


def test_every_benchmark_has_a_yaml_and_fixture():
    for b in U.BENCHMARKS:
        text = (TASKS / f"tgpo_{b}.yaml").read_text()
        assert f"task: tgpo_{b}" in text and f"benchmark: {b}" in text
        assert (FIXTURES / f"{b}.jsonl").is_file()
    repeats = {b: int((TASKS / f"tgpo_{b}.yaml").read_text().split("repeats:")[1].split()[0]) for b in U.BENCHMARKS}
    assert repeats == {b: (32 if b in ("aime24", "aime25", "amc") else 1) for b in U.BENCHMARKS}


def test_local_loader_and_arc_normalisation(monkeypatch):
    monkeypatch.setenv(U.BENCHMARK_DIR_ENV, str(FIXTURES))
    ds = U.load_benchmark("arc_challenge")["test"]
    assert set(ds["answer"]) <= set("ABCD")
    row = ds[1]  # labelled 1-4 in the file
    assert row["answer"] == "D" and "\nD) dead organisms\n" in row["problem"] and "1)" not in row["problem"]
    assert row["kind"] == "choice" and row["system_prompt"] == U.SYSTEM_PROMPT
    math = U.load_benchmark("math500")["test"]
    assert math[0]["kind"] == "math" and math[0]["problem"].startswith("What is")


def test_missing_local_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(U.BENCHMARK_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="mmlu_pro.jsonl"):
        U.load_benchmark("mmlu_pro")


def test_unknown_benchmark():
    with pytest.raises(ValueError):
        U.benchmark_rows("nope")


def test_load_jsonl_generic(tmp_path):
    p = tmp_path / "lab.jsonl"
    p.write_text('{"id": "a", "problem": "1+1?", "answer": "2"}\n\n{"id": "b", "problem": "x", "answer": "C", "kind": "choice"}\n')
    ds = U.load_jsonl(str(p), system_prompt="")["test"]
    assert ds["kind"] == ["math", "choice"] and ds["system_prompt"] == ["", ""]


def test_problem_formats_match_the_authors():
    q = "Two quantum states?\n"
    text = U.format_instructed_choice(q, ["a", "b\n", "c", "d"])
    assert text.startswith("Answer the following multiple choice question.")
    assert "where LETTER is one of ABCD." in text and text.endswith("\n\nA) a\nB) b\n\nC) c\nD) d")
    assert "one of ABCDEFGHIJ." in U.format_instructed_choice("q", list("0123456789"))
    assert U.format_arc("Why?", ["x", "y"]) == "Why?\n\nA) x\nB) y\n"
    first = json.loads(_shared_file("gpqa_diamond.jsonl").read_text().splitlines()[0])["problem"]
    assert first.startswith(U.MC_INSTRUCTION.format(letters="ABCD"))


def test_gpqa_shuffle_is_deterministic_and_tracks_the_answer():
    opts1, a1 = U.gpqa_shuffle("Q1", "right", ["w1", "w2", "w3"])
    opts2, a2 = U.gpqa_shuffle("Q1", "right", ["w1", "w2", "w3"])
    assert (opts1, a1) == (opts2, a2) and opts1[U.LETTERS.index(a1)] == "right"
    letters = {U.gpqa_shuffle(f"Q{i}", "right", ["w1", "w2", "w3"])[1] for i in range(40)}
    assert len(letters) == 4  # the correct option is not always in one place


def test_keep_all_and_process_results():
    resps = [["a", "b", "c"]]
    assert U.keep_all(resps, [{}]) is resps
    doc = {"answer": "4", "kind": "math"}
    out = U.process_results(doc, [["\\boxed{4}", "\\boxed{5}", "<think>\\boxed{4}", "\\boxed{4.0}"]])
    assert out == {"pass@1": 0.5, "pass@k": 1.0}
    assert U.process_results(doc, [["\\boxed{5}"]]) == {"pass@1": 0.0, "pass@k": 0.0}
    assert U.process_results(doc, ["\\boxed{4}"]) == {"pass@1": 1.0, "pass@k": 1.0}  # take-first shape
    choice = {"answer": "B", "kind": "choice"}
    assert U.process_results(choice, [["ANSWER: B", "ANSWER: C"]]) == {"pass@1": 0.5, "pass@k": 1.0}
    assert U.process_results_math(doc, [["\\boxed{4}"]])["pass@1"] == 1.0
    assert U.process_results_choice(choice, [["ANSWER: B"]])["pass@1"] == 1.0


def test_pass_at_k():
    assert U.pass_at_k(4, 0, 1) == 0.0 and U.pass_at_k(4, 1, 4) == 1.0
    assert U.pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert U.pass_at_k(5, 1, 2) == pytest.approx(1 - (4 * 3) / (5 * 4))


def test_yamls_load_in_lm_eval(monkeypatch):
    monkeypatch.setenv(U.BENCHMARK_DIR_ENV, str(FIXTURES))
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS), include_defaults=False)
    for name in [f"tgpo_{b}" for b in U.BENCHMARKS] + ["tgpo_math", "tgpo_ood", "tgpo_paper"]:
        assert name in tm.all_tasks, name
    loaded = tm.load(["tgpo_paper"])
    tasks = loaded["tasks"]
    assert len(tasks) == 9
    aime = next(t for n, t in tasks.items() if "aime24" in str(n))
    cfg = aime.config
    assert cfg.repeats == 32
    gk = cfg.generation_kwargs
    assert gk["temperature"] == 0.6 and gk["top_p"] == 1.0 and gk["max_gen_toks"] == 8192 and gk["do_sample"]
    doc = aime.test_docs()[0]
    assert aime.doc_to_text(doc) == doc["problem"]


def _gold_completion(gold: str) -> str:
    bare = re.sub(r"(?<!\\)\$", "", gold)  # OlympiadBench's "$x$" packaging; "\\$36" keeps its dollar
    return "<think>\nworking...\n</think>\nThe final answer is $\\boxed{" + bare + "}$."


def _acceptance(rows, choice: bool):
    ok = wrong_ok = 0
    for r in rows:
        g = r["answer"]
        if choice:
            ok += choice_correct(f"Reasoning.\nANSWER: {g}", g)
            other = "B" if g == "A" else "A"
            wrong_ok += choice_correct(f"Reasoning.\nANSWER: {other}", g)
        else:
            ok += math_correct(_gold_completion(g), g)
            wrong_ok += math_correct("\\boxed{-987654321.5}", g) or math_correct("\\boxed{\\text{no idea}}", g)
    return ok / len(rows), wrong_ok


@pytest.mark.parametrize("bench", U.BENCHMARKS)
def test_gold_acceptance_fixtures(bench, monkeypatch):
    monkeypatch.setenv(U.BENCHMARK_DIR_ENV, str(FIXTURES))
    rate, wrong = _acceptance(U.benchmark_rows(bench), bench in U.CHOICE_BENCHMARKS)
    assert rate == 1.0 and wrong == 0


@pytest.mark.parametrize("bench", U.BENCHMARKS)
def test_gold_acceptance_benchmark_dir(bench):
    """Every gold answer of $TGPO_BENCHMARK_DIR scored as a completion: >= 99% accepted, wrong ones never."""
    data_dir = os.environ.get(U.BENCHMARK_DIR_ENV)
    if not data_dir:
        pytest.skip(f"{U.BENCHMARK_DIR_ENV} not set (point it at the authors' benchmark files)")
    if not (Path(data_dir) / f"{bench}.jsonl").is_file():
        pytest.skip(f"{bench}.jsonl not in {data_dir}")
    warmup(2)
    rate, wrong = _acceptance(U.benchmark_rows(bench, data_dir), bench in U.CHOICE_BENCHMARKS)
    print(f"gold acceptance {bench}: {rate:.4f}, wrong accepted: {wrong}")
    assert rate >= 0.99
    assert wrong == 0
