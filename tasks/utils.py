"""Helpers of the tgpo lm-eval tasks: data loaders, the keep-all filter and the pass@k scorer.

Every task reads one benchmark as rows ``{"id", "problem", "answer"}`` (the authors' format, see
``/work/shared/benchmarks``) plus two fields added here: ``kind`` (``"math"`` or ``"choice"``) and
``system_prompt`` (the authors' evaluation system prompt, used as the task ``description`` so it becomes the
system turn under ``--apply_chat_template``).

Data source:

- ``TGPO_BENCHMARK_DIR`` set: ``$TGPO_BENCHMARK_DIR/<benchmark>.jsonl``; a missing file is an error naming
  the path (no silent fallback to the Hub).
- unset: the public Hugging Face Hub dataset (:data:`HUB_SOURCES`), converted to the authors' problem text.
  The Hub loaders cannot be exercised offline (CI has no Hub access); they are written against the datasets'
  published schemas and pick columns defensively.

Reuse in other task folders (verified for a sub-folder such as ``tasks/lab``). lm-eval resolves
``!function utils.x`` next to the YAML that contains it (``../`` is not supported), so a sub-folder keeps a
two-line ``utils.py`` that loads this file by path and re-exports what it needs::

    # tasks/lab/utils.py
    import importlib.util, pathlib
    _spec = importlib.util.spec_from_file_location("tgpo_tasks_utils", pathlib.Path(__file__).resolve().parents[1] / "utils.py")
    _u = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(_u)
    load_jsonl, keep_all, process_results = _u.load_jsonl, _u.keep_all, _u.process_results

    # tasks/lab/tgpo_lab_xyz.yaml
    include: ../_tgpo_template_yaml          # protocol, keep-all filter, pass@1/pass@k (its !functions resolve here)
    task: tgpo_lab_xyz
    custom_dataset: !function utils.load_jsonl
    dataset_kwargs:
      path: /abs/path/xyz.jsonl              # rows {"id", "problem", "answer"[, "kind"]}; kind defaults to math
      system_prompt: ""                      # optional: replace the authors' prompt
    repeats: 4
    generation_kwargs: {until: [], do_sample: true, temperature: 0.6, top_p: 1.0, max_gen_toks: 256}
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

TASKS_DIR = Path(__file__).resolve().parent
BENCHMARK_DIR_ENV = "TGPO_BENCHMARK_DIR"
from tgpo.resources import SYSTEM_PROMPT  # noqa: E402  (one copy of the authors' prompt, shipped with tgpo)

MATH_BENCHMARKS = ("math500", "aime24", "aime25", "amc", "minerva_math", "olympiadbench")
CHOICE_BENCHMARKS = ("gpqa_diamond", "mmlu_pro", "arc_challenge")
BENCHMARKS = MATH_BENCHMARKS + CHOICE_BENCHMARKS
LETTERS = "ABCDEFGHIJ"

#: The Hub dataset behind each benchmark (id, config, split). Untested offline: see the module docstring.
HUB_SOURCES: dict[str, tuple[str, str | None, str]] = {
    "math500": ("HuggingFaceH4/MATH-500", None, "test"),
    "aime24": ("math-ai/aime24", None, "test"),
    "aime25": ("math-ai/aime25", None, "test"),
    "amc": ("AI-MO/aimo-validation-amc", None, "train"),  # 83 AMC 2022/23 problems, float answers
    "minerva_math": ("math-ai/minervamath", None, "test"),  # the 272 OCW problems
    "olympiadbench": ("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train"),  # 675 problems
    "gpqa_diamond": ("Idavidrein/gpqa", "gpqa_diamond", "train"),  # gated: needs an accepted licence
    "mmlu_pro": ("TIGER-Lab/MMLU-Pro", None, "test"),
    "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge", "test"),
}

MC_INSTRUCTION = (
    "Answer the following multiple choice question. The last line of your response should be of the "
    "following format: 'ANSWER: $LETTER' (without quotes) where LETTER is one of {letters}. "
    "Think step by step before answering.\n\n"
)


# ------------------------------------------------------------------------------------------------------
# Problem text in the authors' format
# ------------------------------------------------------------------------------------------------------


def format_instructed_choice(question: str, options: Sequence[str]) -> str:
    """GPQA / MMLU-Pro style: instruction, question, then ``A) ...`` lines (options kept verbatim)."""
    letters = LETTERS[: len(options)]
    lines = "\n".join(f"{letter}) {opt}" for letter, opt in zip(letters, options))
    return MC_INSTRUCTION.format(letters=letters) + f"{question}\n\n{lines}"


def format_arc(question: str, options: Sequence[str]) -> str:
    """ARC style (the authors' file): question, blank line, one ``A) ...`` line per option."""
    return f"{question}\n\n" + "".join(f"{letter}) {opt}\n" for letter, opt in zip(LETTERS, options))


def gpqa_shuffle(question: str, correct: str, incorrect: Sequence[str]) -> tuple[list[str], str]:
    """The four GPQA options in a deterministic per-question order, and the correct letter.

    The order is seeded by the question's SHA-256, so every run (and every machine) sees the same options.
    (The authors' own permutation is not published; their local file is used when ``TGPO_BENCHMARK_DIR`` is
    set.)
    """
    options = [correct, *incorrect]
    seed = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:8], "big")
    order = list(range(len(options)))
    random.Random(seed).shuffle(order)
    shuffled = [options[i] for i in order]
    return shuffled, LETTERS[order.index(0)]


_NUMBERED_OPTION_RE = re.compile(r"^([1-9])\) ", re.MULTILINE)


def normalise_choice_row(row: dict[str, Any]) -> dict[str, Any]:
    """ARC rows labelled ``1``–``4`` (a few in ARC-Challenge) become ``A``–``D``, in answer and options."""
    answer = str(row["answer"]).strip()
    if answer.isdigit() and 1 <= int(answer) <= len(LETTERS):
        row = dict(row)
        row["answer"] = LETTERS[int(answer) - 1]
        row["problem"] = _NUMBERED_OPTION_RE.sub(lambda m: f"{LETTERS[int(m.group(1)) - 1]}) ", row["problem"])
    return row


# ------------------------------------------------------------------------------------------------------
# Loaders
# ------------------------------------------------------------------------------------------------------


def _pick(row: dict[str, Any], *names: str) -> Any:
    for n in names:
        if n in row and row[n] not in (None, ""):
            return row[n]
    raise KeyError(f"none of the columns {names} in row with columns {sorted(row)}")


def _answer_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = str(value).strip()
    if "\\boxed" in text:  # some sets ship a solution whose last box is the answer
        from tgpo.scoring import extract_last_boxed

        text = extract_last_boxed(text) or text
    return text


def _hub_rows(benchmark: str) -> list[dict[str, Any]]:
    import datasets

    path, name, split = HUB_SOURCES[benchmark]
    ds = datasets.load_dataset(path, name, split=split)
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(ds):
        if benchmark == "gpqa_diamond":
            question = r["Question"]
            options, answer = gpqa_shuffle(
                question,
                r["Correct Answer"],
                [r["Incorrect Answer 1"], r["Incorrect Answer 2"], r["Incorrect Answer 3"]],
            )
            problem = format_instructed_choice(question, options)
        elif benchmark == "mmlu_pro":
            options = list(r["options"])[: len(LETTERS)]
            problem = format_instructed_choice(r["question"], options)
            answer = LETTERS[int(r["answer_index"])]
        elif benchmark == "arc_challenge":
            labels = list(r["choices"]["label"])
            texts = list(r["choices"]["text"])
            problem = format_arc(r["question"], texts)
            answer = LETTERS[labels.index(r["answerKey"])]  # letters or 1-4: position decides
        else:
            problem = str(_pick(r, "problem", "question", "Problem", "Question"))
            answer = _answer_text(_pick(r, "answer", "final_answer", "Answer", "solution"))
        rows.append({"id": f"{benchmark}-{i:04d}", "problem": problem, "answer": answer})
    return rows


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``{"id", "problem", "answer"}`` jsonl file (blank lines skipped)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _as_dataset(rows: list[dict[str, Any]], kind: str, system_prompt: str | None = None):
    import datasets

    clean = [
        {
            "id": str(r.get("id", i)),
            "problem": str(r["problem"]),
            "answer": str(r["answer"]).strip(),
            "kind": r.get("kind", kind),
            "system_prompt": system_prompt if system_prompt is not None else SYSTEM_PROMPT,
        }
        for i, r in enumerate(rows)
    ]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(clean)})


def benchmark_rows(benchmark: str, data_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Rows of one of the nine benchmarks, from ``data_dir``/``$TGPO_BENCHMARK_DIR`` or else the Hub."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
    data_dir = data_dir or os.environ.get(BENCHMARK_DIR_ENV) or None
    if data_dir:
        path = Path(data_dir) / f"{benchmark}.jsonl"
        if not path.is_file():
            raise FileNotFoundError(
                f"{BENCHMARK_DIR_ENV}={data_dir} is set but {path} does not exist; add the file or unset "
                f"{BENCHMARK_DIR_ENV} to load {benchmark} from the Hub ({HUB_SOURCES[benchmark][0]})"
            )
        rows = read_jsonl(path)
    else:
        rows = _hub_rows(benchmark)
    if benchmark in CHOICE_BENCHMARKS:
        rows = [normalise_choice_row(r) for r in rows]
    return rows


def load_benchmark(benchmark: str, data_dir: str | None = None, **_: Any):
    """``custom_dataset`` of the nine paper tasks: ``dataset_kwargs: {benchmark: <name>}``."""
    kind = "choice" if benchmark in CHOICE_BENCHMARKS else "math"
    return _as_dataset(benchmark_rows(benchmark, data_dir), kind)


def load_jsonl(path: str, kind: str = "math", system_prompt: str | None = None, **_: Any):
    """Generic ``custom_dataset`` for any jsonl of ``{"id", "problem", "answer"[, "kind"]}`` rows.

    ``path`` may be relative to this folder. ``kind`` (``math``/``choice``) picks the grader for rows that do
    not carry their own; ``system_prompt`` replaces the authors' prompt (``""`` for none).
    """
    p = Path(os.path.expandvars(path))
    if not p.is_absolute() and not p.is_file():
        p = TASKS_DIR / p
    if not p.is_file():
        raise FileNotFoundError(f"benchmark file {p} does not exist")
    return _as_dataset(read_jsonl(p), kind, system_prompt)


# ------------------------------------------------------------------------------------------------------
# Filter and metrics
# ------------------------------------------------------------------------------------------------------


def keep_all(resps, docs):
    """Filter (``function: custom``) that keeps every repeat, so ``process_results`` sees all k samples."""
    return resps


def _responses(results: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for r in results:
        if isinstance(r, (list, tuple)):
            out.extend(str(x) for x in r)
        else:
            out.append(str(r))
    return out


def grader_for(doc: dict[str, Any]) -> Callable[[str, str], bool]:
    """``choice_correct`` for rows of kind ``choice``, else ``math_correct``."""
    from tgpo.scoring import choice_correct, math_correct

    return choice_correct if doc.get("kind") == "choice" else math_correct


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def score_responses(
    responses: Sequence[str], gold: str, grader: Callable[[str, str], bool]
) -> dict[str, float]:
    """``pass@1`` (mean correctness over the samples) and ``pass@k`` (k = number of samples)."""
    verdicts = [bool(grader(r, gold)) for r in responses]
    n, c = len(verdicts), sum(verdicts)
    if n == 0:
        return {"pass@1": 0.0, "pass@k": 0.0}
    return {"pass@1": c / n, "pass@k": pass_at_k(n, c, n)}


def process_results(doc: dict[str, Any], results: Sequence[Any]) -> dict[str, float]:
    """lm-eval ``process_results``: scores all repeats of ``doc`` against ``doc["answer"]``."""
    return score_responses(_responses(results), doc["answer"], grader_for(doc))


def process_results_math(doc: dict[str, Any], results: Sequence[Any]) -> dict[str, float]:
    """As :func:`process_results`, always with ``tgpo.scoring.math_correct``."""
    from tgpo.scoring import math_correct

    return score_responses(_responses(results), doc["answer"], math_correct)


def process_results_choice(doc: dict[str, Any], results: Sequence[Any]) -> dict[str, float]:
    """As :func:`process_results`, always with ``tgpo.scoring.choice_correct``."""
    from tgpo.scoring import choice_correct

    return score_responses(_responses(results), doc["answer"], choice_correct)
