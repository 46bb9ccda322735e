"""The library versions a script runs with, against those the committed results were made with (their manifest's
``versions``): one line naming the packages that differ, so numbers that do not match the committed ones are
explained before anything runs (the pinned versions: ``requirements/lock.txt``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Manifest entries that are not libraries the results depend on (the suite itself is identified by its commit).
NOT_COMPARED = ("tgpo",)


def differing(manifest: str | Path, installed: dict[str, str] | None = None) -> dict[str, tuple[str, str | None]]:
    """``{package: (committed version, installed version or None)}`` for every package of the manifest's
    ``versions`` that this environment has in another version (or not at all); empty without a readable manifest."""
    from tgpo.provenance import package_versions

    try:
        committed = json.loads(Path(manifest).read_text()).get("versions") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    names = tuple(k for k in committed if k not in NOT_COMPARED)
    installed = package_versions(names) if installed is None else installed
    return {k: (committed[k], installed.get(k)) for k in names if installed.get(k) != committed[k]}


def note(script: str, manifest: str | Path, installed: dict[str, str] | None = None) -> str | None:
    """The one line (None when the versions agree or there is no committed manifest)."""
    changed = differing(manifest, installed)
    if not changed:
        return None
    what = ", ".join(f"{k} {now or 'not installed'} (committed {then})" for k, (then, now) in changed.items())
    return (f"{script}: note: library versions differ from those of {manifest}: {what}; results may differ from the "
            "committed ones (install requirements/lock.txt for the pinned versions)")


def report(script: str, manifest: str | Path) -> None:
    """Print :func:`note` on stderr when there is one."""
    line = note(script, manifest)
    if line:
        print(line, file=sys.stderr, flush=True)
