"""Training data: a local JSONL or the Hub (docs/method.md §3), turned into TRL's ``prompt`` column, with clear errors.

Rows need a problem (``problem``, or an already-built ``prompt``) and a gold ``answer``; LUFFY also reads
``teacher_completion`` (a correct teacher trace). ``prompt`` is built from ``problem``:

* tokenizer with a chat template: ``[{"role": "system", ...}, {"role": "user", "content": problem}]`` — TRL applies
  the template; the system prompt is the authors' (``tgpo/resources/system_prompt.txt``) unless told otherwise;
* tokenizer without one (the lab's character-level models): the problem text itself, no system prompt.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = [
    "DEFAULT_HUB_DATASET",
    "DataError",
    "build_prompt",
    "default_system_prompt",
    "load_train_dataset",
    "read_jsonl",
    "validate_dataset",
]

#: LUFFY's release of the OpenR1-Math prompts with teacher traces (docs/method.md §3: ~46k problems, traces <= 8192 tokens).
DEFAULT_HUB_DATASET = "Elliott/Openr1-Math-46k-8192"


class DataError(ValueError):
    """The training data cannot be used as given; the message names the input."""


class MissingColumnError(DataError):
    """Training data without a column it needs (``missing``: their names)."""

    def __init__(self, message: str, missing):
        super().__init__(message)
        self.missing = tuple(missing)


def default_system_prompt() -> str:
    """The authors' "Thought/Solution" system prompt (docs/method.md §4), shipped in ``tgpo/resources/``."""
    from tgpo.resources import SYSTEM_PROMPT

    return SYSTEM_PROMPT.rstrip("\n")


def build_prompt(problem: str, tokenizer, system_prompt: str | None = None):
    """TRL's ``prompt`` for one problem: chat messages when the tokenizer has a chat template, else plain text."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        return messages + [{"role": "user", "content": problem}]
    return problem


def read_jsonl(path: str | Path, *, required: tuple[str, ...] = (), error: type[Exception] | None = None) -> list[dict]:
    """Rows of a JSONL file (blank lines skipped). A line that is not UTF-8, not JSON, not an object or without
    the ``required`` keys raises ``error`` (default :class:`DataError`) naming the file and the line."""
    error = error or DataError
    rows = []
    with Path(path).open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{path}, line {lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise error(f"{where}: not UTF-8 text (byte {err.start}: {raw[err.start:err.start + 1]!r})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict) or any(k not in row for k in required):
                wanted = " with " + " and ".join(f'"{k}"' for k in required) if required else " per line"
                raise error(f"{where}: expected a JSON object{wanted}, got {json.dumps(row)[:60]}")
            rows.append(row)
    return rows


def _from_hub_row(row: dict) -> dict:
    """Map a LUFFY/OpenR1 Hub row (``prompt`` messages, ``reward_model.ground_truth``, ``target``) to ours."""
    out = dict(row)
    if "problem" not in out:
        prompt = row.get("prompt")
        if isinstance(prompt, list) and prompt:
            out["problem"] = prompt[-1].get("content", "")
            out.pop("prompt")
    if "answer" not in out and isinstance(row.get("reward_model"), dict):
        out["answer"] = row["reward_model"].get("ground_truth")
    if "teacher_completion" not in out and row.get("target"):
        target = row["target"]
        first = target[0] if isinstance(target, list) else target
        out["teacher_completion"] = first.get("content") if isinstance(first, dict) else first
    return out


def _prompt_tokens(prompt, tokenizer) -> int:
    if isinstance(prompt, list):  # chat messages: the template TRL will apply
        ids = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)
        return len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def check_prompt_lengths(rows: list[dict], tokenizer, name: str, max_positions: int, max_completion_length: int) -> None:
    """Raise :class:`DataError` naming the first row whose prompt + ``max_completion_length`` exceeds the student's
    ``max_positions`` (a 1 MB prompt would otherwise try to allocate its attention much later)."""
    budget = max_positions - max_completion_length
    if budget < 1:
        raise DataError(f"max_completion_length={max_completion_length} leaves no room for a prompt in the student's "
                        f"{max_positions} positions")
    for i, row in enumerate(rows):
        prompt = row["prompt"]
        n = _prompt_tokens(prompt, tokenizer)
        if n > budget:
            raise DataError(f"training data {name}: row {i}'s prompt has {n} tokens; with max_completion_length "
                            f"{max_completion_length} it exceeds the student's {max_positions} positions")


def student_context_length(model: str) -> int | None:
    """``max_position_embeddings`` from a local model folder's ``config.json`` (None when unknown here)."""
    cfg = Path(model) / "config.json"
    if not cfg.is_file():
        return None
    data = json.loads(cfg.read_text())
    data = data.get("text_config", data) if "max_position_embeddings" not in data else data
    value = data.get("max_position_embeddings")
    return int(value) if value else None


#: Rows of a streaming (``IterableDataset``) dataset that :func:`validate_dataset` reads: it has no length, and
#: reading it whole would consume the stream.
STREAM_ROWS_CHECKED = 64


def _rows_to_check(dataset, wanted: list[str]) -> tuple[int, list[str], dict[str, list]]:
    """``(rows read, columns, {column: values})`` for the ``wanted`` columns present: every row of a map-style
    dataset, the first :data:`STREAM_ROWS_CHECKED` rows of a streaming one."""
    if hasattr(dataset, "__len__"):
        columns = list(dataset.column_names)
        n = len(dataset)
        return n, columns, {c: dataset[c] for c in wanted if c in columns and n}
    import itertools

    rows = list(itertools.islice(iter(dataset), STREAM_ROWS_CHECKED))
    columns = list(dataset.column_names or (rows[0].keys() if rows else []))
    return len(rows), columns, {c: [r.get(c) for r in rows] for c in wanted if c in columns}


def validate_dataset(dataset, name: str, need_answer: bool = True, need_teacher: bool = False,
                     need_prompt: bool = True) -> None:
    """Raise :class:`DataError` naming ``name`` if ``dataset`` is empty or lacks a needed column or value
    (:class:`MissingColumnError` for a column). ``need_prompt=False``: TRL's environments write the prompts.

    A streaming ``IterableDataset`` (no length) is checked on its first :data:`STREAM_ROWS_CHECKED` rows."""
    valued = (["answer"] if need_answer else []) + (["teacher_completion"] if need_teacher else [])
    needed = (["prompt"] if need_prompt else []) + valued
    n, columns, values = _rows_to_check(dataset, valued) if dataset is not None else (0, [], {})
    if n == 0:
        raise DataError(f"training data {name} is empty")
    missing = [c for c in needed if c not in columns]
    if missing:
        raise MissingColumnError(
            f"training data {name} has no {', '.join(repr(c) for c in missing)} column (columns: {sorted(columns)})",
            missing,
        )
    for col in valued:
        empty = [i for i, v in enumerate(values[col]) if v is None or (isinstance(v, str) and not v.strip())]
        if empty:
            raise DataError(f"training data {name}: column {col!r} is empty in {len(empty)} rows (first: row {empty[0]})")


def local_file(source: str | Path | None) -> Path | None:
    """The local file a dataset source names (``None`` for a Hub id or the default). Raises :class:`DataError` for a
    ``.jsonl`` that does not exist: cheap, so ``tgpo train`` checks it before any output is prepared."""
    if source is None:
        return None
    path = Path(source).expanduser()
    if str(source).endswith(".jsonl") or path.exists():
        if not path.exists():
            raise DataError(f"training data file {str(source)!r} does not exist")
        return path
    return None


def load_train_dataset(
    source: str | Path | None,
    tokenizer,
    *,
    split: str = "train",
    limit: int | None = None,
    system_prompt: str | None = None,
    need_teacher: bool = False,
    max_positions: int | None = None,
    max_completion_length: int = 0,
):
    """A ``datasets.Dataset`` with ``prompt``, ``answer`` (and ``teacher_completion``) for ``TGPOTrainer``.

    Args:
        source: a local ``.jsonl`` file, a Hub dataset id, or ``None`` for :data:`DEFAULT_HUB_DATASET`.
        tokenizer: the student's; decides chat messages vs plain text.
        limit: keep the first ``limit`` rows (>= 1; after loading; the Hub split is not shuffled).
        system_prompt: ``None`` uses :func:`default_system_prompt` (chat-templated models only); ``""`` uses none.
        need_teacher: LUFFY — require ``teacher_completion`` in every row.
        max_positions, max_completion_length: the student's context length; a row whose prompt plus
            ``max_completion_length`` does not fit is refused by name (before any model loads).
    """
    from datasets import Dataset, load_dataset

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"dataset.limit={limit!r}: expected a whole number >= 1 (or no limit)")
    source = str(source) if source is not None else DEFAULT_HUB_DATASET
    path = local_file(source)
    if path is not None:
        rows = read_jsonl(path)
        name = str(path)
    else:  # Hub id (docs/method.md §3); not reachable in the offline test environment
        rows = [_from_hub_row(r) for r in load_dataset(source, split=split)]
        name = f"{source}[{split}]"
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise DataError(f"training data {name} is empty")
    if system_prompt is None and getattr(tokenizer, "chat_template", None):
        system_prompt = default_system_prompt()
    out = []
    for i, row in enumerate(rows):
        if "prompt" not in row:
            if not isinstance(row.get("problem"), str) or not row["problem"].strip():
                raise DataError(f"training data {name}: row {i} has neither a 'problem' nor a 'prompt'")
            row = {**row, "prompt": build_prompt(row.pop("problem"), tokenizer, system_prompt)}
        if "answer" in row and row["answer"] is not None:
            row["answer"] = str(row["answer"])
        out.append(row)
    if max_positions:
        check_prompt_lengths(out, tokenizer, name, max_positions, max_completion_length)
    columns = set().union(*(r.keys() for r in out))
    dataset = Dataset.from_list([{c: r.get(c) for c in columns} for r in out])
    validate_dataset(dataset, name, need_answer=True, need_teacher=need_teacher)
    return dataset
