"""Run records: what one evaluated run leaves behind, read from its ``tgpo eval`` folder and written as JSON.

A record is a JSON-able dict with (at least) ``row``, ``label``, ``method``, ``seed``, ``scores`` (``{task: pass@1}``
from ``summary.csv``, groups included) and ``problems`` (``{task: [per-problem pass@1, in document order]}`` from
``samples_<task>.jsonl``; 0/1 under greedy decoding) — the per-problem values are what confidence intervals over
problems need.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path


def read_eval_dir(eval_dir: Path) -> tuple[dict[str, float], dict[str, list[float]]]:
    """``(scores, problems)`` of a ``tgpo eval`` output folder (see the module docstring)."""
    eval_dir = Path(eval_dir)
    with (eval_dir / "summary.csv").open(encoding="utf-8") as fh:
        scores = {row["task"]: float(row["pass@1"]) for row in csv.DictReader(fh) if row["pass@1"] not in ("", None)}
    problems = {}
    for task in scores:
        if not (eval_dir / f"samples_{task}.jsonl").exists():  # a group: its leaves have the samples
            continue
        problems[task] = [_compact(float(item["pass@1"])) for item in _samples(eval_dir, task)]
    return scores, problems


def read_completions(eval_dir: Path, task: str) -> list[str]:
    """The first response to each problem of ``task`` in a ``tgpo eval`` folder, in document order."""
    return [item["resps"][0][0] for item in _samples(eval_dir, task)]


def _samples(eval_dir: Path, task: str) -> list[dict]:
    """The items of ``samples_<task>.jsonl`` in a ``tgpo eval`` folder, in document order."""
    text = (Path(eval_dir) / f"samples_{task}.jsonl").read_text(encoding="utf-8")
    return sorted((json.loads(line) for line in text.splitlines() if line.strip()), key=lambda item: item["doc_id"])


def _compact(value: float) -> float | int:
    return int(value) if value in (0.0, 1.0) else value


def write_records(records: list[dict], path: Path) -> Path:
    """``records`` as a JSON list, one record per line (compact, and diffs stay per run)."""
    body = ",\n".join(json.dumps(record, default=str) for record in records)
    Path(path).write_text(f"[\n{body}\n]\n", encoding="utf-8")
    return Path(path)
