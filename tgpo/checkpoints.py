"""Checkpoints a kill cannot corrupt silently: a completion record written last, and resume from the newest
complete checkpoint (docs/architecture.md, "Run directories").

Transformers writes ``checkpoint-N/`` file by file; a kill in between leaves a folder that ``get_last_checkpoint``
would happily pick. :func:`mark_complete` is called once every file of a checkpoint is on disk (by
``TGPOTrainer._save_checkpoint``) and records each file's size in ``tgpo_checkpoint.json`` (written to a temporary
name, then renamed, so the record itself is atomic). :func:`newest_complete` skips a checkpoint without a record, or
whose files no longer match it, with the reason, and returns the newest one that is whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["RECORD", "checkpoint_dirs", "mark_complete", "move_aside", "newest_complete", "verify"]

RECORD = "tgpo_checkpoint.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """``checkpoint-N`` folders of ``output_dir``, newest (largest N) first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def mark_complete(checkpoint: str | Path) -> Path:
    """Record that every file of ``checkpoint`` is written: their sizes, in a file renamed into place last."""
    checkpoint = Path(checkpoint)
    files = {str(p.relative_to(checkpoint)): p.stat().st_size
             for p in sorted(checkpoint.rglob("*")) if p.is_file() and p.name != RECORD}
    record = {"files": files, "written_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    tmp = checkpoint / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, checkpoint / RECORD)
    return checkpoint / RECORD


def verify(checkpoint: str | Path) -> str | None:
    """``None`` when ``checkpoint`` is complete and intact, else why not (naming the file)."""
    checkpoint = Path(checkpoint)
    record_file = checkpoint / RECORD
    if not record_file.is_file():
        return f"{checkpoint} is incomplete (no {RECORD}: the run was stopped while writing it)"
    try:
        files = json.loads(record_file.read_text())["files"]
    except (ValueError, KeyError) as err:
        return f"{record_file} is unreadable ({err})"
    for name, size in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != size:
            return f"{path} is corrupt ({path.stat().st_size} bytes, {size} when it was written)"
    return None


def newest_complete(output_dir: str | Path) -> tuple[Path | None, list[str]]:
    """``(newest complete checkpoint or None, reasons the newer ones were skipped)``."""
    skipped = []
    for path in checkpoint_dirs(output_dir):
        problem = verify(path)
        if problem is None:
            return path, skipped
        skipped.append(problem)
    return None, skipped


def move_aside(output_dir: str | Path) -> Path:
    """Move a whole earlier run out of the way (never delete it): ``<dir>`` -> ``<dir>.previous-<UTC time>``."""
    output_dir = Path(output_dir)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = output_dir.with_name(f"{output_dir.name}.previous-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = output_dir.with_name(f"{output_dir.name}.previous-{stamp}-{n}")
    shutil.move(str(output_dir), str(target))
    return target
