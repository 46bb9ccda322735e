"""Output folders that never lose a result: earlier outputs are moved aside, never overwritten or deleted."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

PREVIOUS = "previous"


def archive_existing(out_dir: Path, names: Iterable[str] | None = None) -> Path | None:
    """Move earlier outputs in ``out_dir`` to ``out_dir/previous/<UTC stamp>/`` and say so in one printed line.

    Args:
        out_dir: the output folder (created if missing).
        names: the entries to move when they exist (files or folders); ``None``: everything but ``previous/``.
    Returns: the archive folder, or ``None`` when there was nothing to move.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if names is None:
        existing = [p for p in sorted(out_dir.iterdir()) if p.name != PREVIOUS]
    else:
        existing = [out_dir / n for n in dict.fromkeys(names) if (out_dir / n).exists() or (out_dir / n).is_symlink()]
    if not existing:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    archive = out_dir / PREVIOUS / stamp
    suffix = 1
    while archive.exists():  # two archives within one second
        archive = out_dir / PREVIOUS / f"{stamp}-{suffix}"
        suffix += 1
    archive.mkdir(parents=True)
    for item in existing:
        shutil.move(str(item), str(archive / item.name))
    print(f"earlier outputs in {out_dir} ({len(existing)}) moved to {archive}")
    return archive


def overlapping_input(out_dir: str | Path, inputs: Mapping[str, str | Path | None], flag: str = "--output-dir") -> str | None:
    """The one-line refusal when ``out_dir`` is, or contains, one of a run's local inputs (``what -> path``: a
    model, tokenizer, teacher, dataset), else ``None``. Archiving earlier outputs in such a folder could move the
    input away, so callers refuse before anything moves. Paths that do not exist locally (Hub ids) are skipped."""
    out = Path(out_dir).expanduser().resolve()
    for what, path in inputs.items():
        if not path or not Path(path).expanduser().exists():
            continue
        p = Path(path).expanduser().resolve()
        if p == out or out in p.parents:
            return (f"{flag} {out_dir} {'is' if p == out else 'contains'} the {what} {path}: choose a separate "
                    "folder for the outputs")
    return None
