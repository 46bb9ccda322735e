"""Helpers of the tgpo lm-eval tasks: data loaders, the grading filter and the metrics.

Every task reads one benchmark as rows ``{"id", "problem", "answer"}`` (the authors' format) plus fields
added here: ``kind`` (``"math"`` or ``"choice"``), ``system_prompt`` (the authors' evaluation system prompt,
used as the task ``description`` so it becomes the system turn under ``--apply_chat_template``) and
``prompt_ends_in_think`` (whether the model's chat template ends the prompt with ``<think>\n``; the authors'
grade splits the response only then — pass ``--metadata '{"prompt_ends_in_think": true}'`` to ``lm_eval``;
``tgpo eval`` finds it out from the chat template).

Data source, per benchmark:

- ``TGPO_BENCHMARK_DIR`` set and ``<benchmark>.jsonl`` there: that file.
- otherwise the public Hugging Face Hub dataset (:data:`HUB_SOURCES`), converted to the authors' problem text
  (a missing local file says so in a log line). When neither is available the error names both the file and
  the Hub id. The Hub loaders cannot be exercised offline (CI has no Hub access); they are written against
  the datasets' published schemas and pick columns defensively.

Metrics (docs/method.md §4), each the mean over problems: ``pass@1`` and ``pass@k`` with the strict grade
(primary), ``pass@1_authors`` and ``pass@k_authors`` with the authors' rule, and ``disagreement``, the share of
samples the two grades judge differently. The ``none`` filter grades every sample of a task in one parallel
batch (``tgpo.grading.grade_batch``); ``process_results`` then grades its problem's samples again, which the
grader's verdict cache answers without recomputing (no state of its own is kept here).

Reuse in other task folders (verified for a sub-folder such as ``tasks/lab``). lm-eval resolves
``!function utils.x`` next to the YAML that contains it (``../`` is not supported), so a sub-folder keeps a
``utils.py`` that re-exports what it needs from ``tgpo.tasks.utils``::

    # tasks/xyz/utils.py
    from tgpo.tasks.utils import grade_all, load_jsonl, process_results  # noqa: F401

    # tasks/xyz/tgpo_xyz.yaml
    include: ../_tgpo_template_yaml          # protocol, grading filter, metrics (its !functions resolve here)
    task: tgpo_xyz
    custom_dataset: !function utils.load_jsonl
    dataset_kwargs:
      path: /abs/path/xyz.jsonl              # rows {"id", "problem", "answer"[, "kind"]}; kind defaults to math
      system_prompt: ""                      # optional: replace the authors' prompt
    repeats: 4
    generation_kwargs: {until: [], do_sample: true, temperature: 0.6, top_p: 1.0, max_gen_toks: 256}
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tgpo.resources import SYSTEM_PROMPT  # one copy of the authors' prompt, shipped with tgpo
from tgpo.tasks import BenchmarkDataError

TASKS_DIR = Path(__file__).resolve().parent
BENCHMARK_DIR_ENV = "TGPO_BENCHMARK_DIR"
log = logging.getLogger("tgpo.tasks")

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
        from tgpo.grading import extract_last_boxed

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
    """Rows of a ``{"id", "problem", "answer"}`` jsonl file (blank lines skipped). A line that is not such
    an object raises :class:`BenchmarkDataError` naming the file and the line."""
    from tgpo.data import read_jsonl as read_rows

    return read_rows(path, required=("problem", "answer"), error=BenchmarkDataError)


def _as_dataset(
    rows: list[dict[str, Any]], kind: str, system_prompt: str | None = None, prompt_ends_in_think: bool = False
):
    import datasets

    clean = [
        {
            "id": str(r.get("id", i)),
            "problem": str(r["problem"]),
            "answer": str(r["answer"]).strip(),
            "kind": r.get("kind", kind),
            "system_prompt": system_prompt if system_prompt is not None else SYSTEM_PROMPT,
            "prompt_ends_in_think": bool(prompt_ends_in_think),
        }
        for i, r in enumerate(rows)
    ]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(clean)})


def _hub_rows_or_error(benchmark: str, missing: Path | None) -> list[dict[str, Any]]:
    hub_id = HUB_SOURCES[benchmark][0]
    try:
        return _hub_rows(benchmark)
    except Exception as e:  # noqa: BLE001 - offline, gated, renamed: one line naming what was tried
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:200]
        local = f"{missing} does not exist and " if missing else f"{BENCHMARK_DIR_ENV} is not set and "
        raise BenchmarkDataError(
            f"{benchmark}: {local}the Hub dataset {hub_id} could not be loaded ({reason})"
        ) from None


def benchmark_rows(benchmark: str, data_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Rows of one of the nine benchmarks: ``<data_dir or $TGPO_BENCHMARK_DIR>/<benchmark>.jsonl`` when it
    exists, else the Hub dataset."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
    data_dir = data_dir or os.environ.get(BENCHMARK_DIR_ENV) or None
    path = Path(data_dir) / f"{benchmark}.jsonl" if data_dir else None
    if path is not None and path.is_file():
        rows = read_jsonl(path)
    else:
        if path is not None:
            log.warning("%s not found: loading %s from the Hub (%s)", path, benchmark, HUB_SOURCES[benchmark][0])
        rows = _hub_rows_or_error(benchmark, path)
    if benchmark in CHOICE_BENCHMARKS:
        rows = [normalise_choice_row(r) for r in rows]
    return rows


def load_benchmark(benchmark: str, data_dir: str | None = None, prompt_ends_in_think: bool = False, **_: Any):
    """``custom_dataset`` of the nine paper tasks: ``dataset_kwargs: {benchmark: <name>}``."""
    kind = "choice" if benchmark in CHOICE_BENCHMARKS else "math"
    return _as_dataset(benchmark_rows(benchmark, data_dir), kind, prompt_ends_in_think=prompt_ends_in_think)


def load_jsonl(
    path: str, kind: str = "math", system_prompt: str | None = None, prompt_ends_in_think: bool = False, **_: Any
):
    """Generic ``custom_dataset`` for any jsonl of ``{"id", "problem", "answer"[, "kind"]}`` rows.

    ``path`` may be relative to this folder. ``kind`` (``math``/``choice``) picks the grader for rows that do
    not carry their own; ``system_prompt`` replaces the authors' prompt (``""`` for none).
    """
    p = Path(os.path.expandvars(path))
    if not p.is_absolute() and not p.is_file():
        p = TASKS_DIR / p
    if not p.is_file():
        raise BenchmarkDataError(f"benchmark file {p} does not exist")
    return _as_dataset(read_jsonl(p), kind, system_prompt, prompt_ends_in_think)


# ------------------------------------------------------------------------------------------------------
# Grading filter and metrics
# ------------------------------------------------------------------------------------------------------

def _responses(results: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for r in results:
        if isinstance(r, (list, tuple)):
            out.extend(str(x) for x in r)
        else:
            out.append(str(r))
    return out


def _grading_key(doc: dict[str, Any], response: str) -> tuple:
    return (doc.get("kind", "math"), str(doc["answer"]), bool(doc.get("prompt_ends_in_think")), response)


def _grade(keys: list[tuple]) -> list:
    """Both grades (``tgpo.grading.Verdicts``) of every key, in one parallel batch per (kind, think)."""
    from tgpo.grading import grade_batch

    verdicts: dict[tuple, Any] = {}
    todo = list(dict.fromkeys(keys))
    for kind, think in dict.fromkeys((k[0], k[2]) for k in todo):
        group = [k for k in todo if k[0] == kind and k[2] == think]
        graded = grade_batch([k[3] for k in group], [k[1] for k in group], kind=kind, prompt_ends_in_think=think)
        verdicts.update(zip(group, graded))
    return [verdicts[k] for k in keys]


def grade_all(resps, docs):
    """Filter (``function: custom``): keeps every repeat, so ``process_results`` sees all k samples, and
    grades all samples of the task at once, in parallel, before lm-eval scores them one problem at a time (the
    verdicts wait in the grader's cache)."""
    _grade([_grading_key(doc, r) for doc, rs in zip(docs, resps) for r in _responses(rs)])
    return resps


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def score_verdicts(strict: Sequence[bool], authors: Sequence[bool]) -> dict[str, float]:
    """The metrics of one problem from its samples' two grades (k = number of samples)."""
    n = len(strict)
    if n == 0:
        return dict.fromkeys(METRICS, 0.0)
    c, c_authors = sum(strict), sum(authors)
    return {
        "pass@1": c / n,
        "pass@k": pass_at_k(n, c, n),
        "pass@1_authors": c_authors / n,
        "pass@k_authors": pass_at_k(n, c_authors, n),
        "disagreement": sum(s != a for s, a in zip(strict, authors)) / n,
    }


METRICS = ("pass@1", "pass@k", "pass@1_authors", "pass@k_authors", "disagreement")


def process_results(doc: dict[str, Any], results: Sequence[Any]) -> dict[str, float]:
    """lm-eval ``process_results``: both grades of all repeats of ``doc`` against ``doc["answer"]``."""
    verdicts = _grade([_grading_key(doc, r) for r in _responses(results)])  # cached by grade_all's batch
    return score_verdicts([v.strict for v in verdicts], [v.authors for v in verdicts])
