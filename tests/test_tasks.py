"""tasks/ (the package tgpo.tasks): loaders, the grading filter and metrics, the YAMLs, and gold acceptance
on the benchmark files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import tgpo.tasks.utils as U
from tgpo.eval.run import tasks_dir
from tgpo.grading import grade_batch, math_correct_batch, warmup
from tgpo.tasks import BenchmarkDataError

TASKS = tasks_dir()
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmarks"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


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


def test_missing_local_file_falls_back_to_the_hub(monkeypatch, tmp_path, caplog):
    """Offline: the Hub is tried (and said so), and the error names both the missing file and the Hub id."""
    monkeypatch.setenv(U.BENCHMARK_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with caplog.at_level("WARNING", logger="tgpo.tasks"), pytest.raises(BenchmarkDataError) as err:
        U.load_benchmark("mmlu_pro")
    message = str(err.value)
    assert str(tmp_path / "mmlu_pro.jsonl") in message and "TIGER-Lab/MMLU-Pro" in message
    assert "\n" not in message
    assert any("loading mmlu_pro from the Hub" in r.getMessage() for r in caplog.records)


def test_hub_rows_used_when_the_local_file_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv(U.BENCHMARK_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(U, "_hub_rows", lambda b: [{"id": "m-0", "problem": "Pick one.\n\nA) x\nB) y", "answer": "B"}])
    assert U.benchmark_rows("mmlu_pro") == [{"id": "m-0", "problem": "Pick one.\n\nA) x\nB) y", "answer": "B"}]
    (tmp_path / "mmlu_pro.jsonl").write_text('{"id": "local", "problem": "p", "answer": "A"}\n')
    assert U.benchmark_rows("mmlu_pro")[0]["id"] == "local"  # a file that is there wins


@pytest.mark.parametrize(
    "line,why",
    [("{not json", "not valid JSON"), ('{"problem": "p"}', '"problem" and "answer"'), ("[1, 2]", '"problem" and "answer"')],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, line, why):
    p = tmp_path / "math500.jsonl"
    p.write_text('{"id": "a", "problem": "1+1?", "answer": "2"}\n\n' + line + "\n")
    with pytest.raises(BenchmarkDataError) as err:
        U.benchmark_rows("math500", tmp_path)
    assert f"{p}, line 3" in str(err.value) and why in str(err.value)


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


def test_grading_filter_and_process_results():
    doc = {"answer": "4", "kind": "math", "prompt_ends_in_think": False}
    resps = [["\\boxed{4}", "\\boxed{5}", "<think>\\boxed{4}", "The answer is 4"]]
    assert U.grade_all(resps, [doc]) is resps  # keeps every repeat
    out = U.process_results(doc, resps)
    assert out == {
        "pass@1": 0.25,
        "pass@k": 1.0,
        "pass@1_authors": 0.75,  # the unclosed think and the bare 4 count for the authors
        "pass@k_authors": 1.0,
        "disagreement": 0.5,
    }
    assert U.process_results(doc, [["\\boxed{5}"]])["pass@1"] == 0.0
    assert U.process_results(doc, ["\\boxed{4}"])["pass@1"] == 1.0  # take-first shape
    choice = {"answer": "B", "kind": "choice"}
    got = U.process_results(choice, [["ANSWER: B", "\\boxed{B}", "ANSWER: C"]])
    assert got["pass@1"] == pytest.approx(2 / 3) and got["pass@1_authors"] == pytest.approx(1 / 3)
    assert got["disagreement"] == pytest.approx(1 / 3)


def test_prompt_ends_in_think_reaches_the_grades(monkeypatch):
    """The same completion, graded as if the template had opened the think block, is unfinished (strict) and
    split at </think> (authors)."""
    monkeypatch.setenv(U.BENCHMARK_DIR_ENV, str(FIXTURES))
    row = U.load_benchmark("math500", prompt_ends_in_think=True)["test"][0]
    assert row["prompt_ends_in_think"] is True
    completion = "so \\boxed{" + row["answer"] + "} is my guess"
    opened = U.process_results(row, [[completion]])
    closed = U.process_results({**row, "prompt_ends_in_think": False}, [[completion]])
    assert opened["pass@1"] == 0.0 and closed["pass@1"] == 1.0
    assert opened["pass@1_authors"] == 1.0  # oat still grades the unsplit text


def test_pass_at_k():
    assert U.pass_at_k(4, 0, 1) == 0.0 and U.pass_at_k(4, 1, 4) == 1.0
    assert U.pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert U.pass_at_k(5, 1, 2) == pytest.approx(1 - (4 * 3) / (5 * 4))


def test_yamls_load_in_lm_eval(monkeypatch):
    monkeypatch.setenv(U.BENCHMARK_DIR_ENV, str(FIXTURES))
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS), include_defaults=False, metadata={"prompt_ends_in_think": True})
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
    assert "seed" in gk and gk["seed"] is None  # independent repeats, whatever the backend's default seed
    assert [m["metric"] for m in cfg.metric_list] == list(U.METRICS)
    doc = aime.test_docs()[0]
    assert aime.doc_to_text(doc) == doc["problem"] and doc["prompt_ends_in_think"] is True
    for group in loaded["groups"].values():
        metrics = {m.metric for m in group.aggregate_metric_list}
        assert metrics == set(U.METRICS), group


def test_tasks_ship_with_the_package():
    """tgpo finds its tasks through package resources: the folder holds the YAMLs and lab tasks."""
    assert TASKS.is_dir() and (TASKS / "_tgpo_template_yaml").is_file() and (TASKS / "lab" / "tgpo_lab.yaml").is_file()
    assert (TASKS / "utils.py").read_text() == Path(U.__file__).read_text()


def _gold_completion(gold: str) -> str:
    bare = re.sub(r"(?<!\\)\$", "", gold)  # OlympiadBench's "$x$" packaging; "\\$36" keeps its dollar
    return "<think>\nworking...\n</think>\nThe final answer is $\\boxed{" + bare + "}$."


def _acceptance(rows, choice: bool):
    """Share of golds accepted when written back as a completion (both grades), and wrong answers accepted."""
    golds = [r["answer"] for r in rows]
    if choice:
        right = [f"Reasoning.\nANSWER: {g}" for g in golds]
        boxed = [f"Reasoning.\nThe answer is \\boxed{{{g}}}" for g in golds]
        wrong = [f"Reasoning.\nANSWER: {'B' if g == 'A' else 'A'}" for g in golds]
        strict_ok = [v.strict for v in grade_batch(right, golds, kind="choice")]
        authors_ok = [v.authors for v in grade_batch(boxed, golds, kind="choice")]  # they need the box
        wrong_ok = sum(v.strict or v.authors for v in grade_batch(wrong, golds, kind="choice"))
    else:
        verdicts = grade_batch([_gold_completion(g) for g in golds], golds)
        strict_ok, authors_ok = [v.strict for v in verdicts], [v.authors for v in verdicts]
        wrong_ok = sum(math_correct_batch(["\\boxed{-987654321.5}"] * len(golds), golds)) + sum(
            math_correct_batch(["\\boxed{\\text{no idea}}"] * len(golds), golds)
        )
    return sum(strict_ok) / len(rows), sum(authors_ok) / len(rows), wrong_ok


@pytest.mark.parametrize("bench", U.BENCHMARKS)
def test_gold_acceptance_fixtures(bench, monkeypatch):
    monkeypatch.setenv(U.BENCHMARK_DIR_ENV, str(FIXTURES))
    strict, authors, wrong = _acceptance(U.benchmark_rows(bench), bench in U.CHOICE_BENCHMARKS)
    assert strict == 1.0 and authors == 1.0 and wrong == 0


@pytest.mark.parametrize("bench", U.BENCHMARKS)
def test_gold_acceptance_benchmark_dir(bench):
    """Every gold answer of $TGPO_BENCHMARK_DIR scored as a completion: >= 99% accepted by both grades, wrong
    ones never (strict)."""
    data_dir = os.environ.get(U.BENCHMARK_DIR_ENV)
    if not data_dir:
        pytest.skip(f"{U.BENCHMARK_DIR_ENV} not set (point it at the authors' benchmark files)")
    if not (Path(data_dir) / f"{bench}.jsonl").is_file():
        pytest.skip(f"{bench}.jsonl not in {data_dir}")
    warmup()
    strict, authors, wrong = _acceptance(U.benchmark_rows(bench, data_dir), bench in U.CHOICE_BENCHMARKS)
    print(f"gold acceptance {bench}: strict {strict:.4f}, authors {authors:.4f}, wrong accepted: {wrong}")
    assert strict >= 0.99 and authors >= 0.99
    assert wrong == 0
