"""The library versions and the CPU a script runs with, against those the committed results were made with (their
manifest's ``versions`` and ``machine``): one line naming what differs, so numbers that do not match the committed
ones are explained before anything runs (the pinned versions: ``requirements/lock.txt``).

The CPU's vendor matters because MKL keeps the lab's pinned AVX2 code branch (``tgpo.lab.kernels``) only on Intel
CPUs; elsewhere it silently takes its own branch. So a trained run on an AMD and on an Intel CPU differs in the last
bits of its first gradient, and RL amplifies that into other samples (results/lab/README.md#time)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Manifest entries that are not libraries the results depend on (the suite itself is identified by its commit).
NOT_COMPARED = ("tgpo",)


def _loaded(manifest: str | Path | dict) -> dict:
    """The manifest's contents (read from its path unless already read); empty when unreadable."""
    if isinstance(manifest, dict):
        return manifest
    try:
        contents = json.loads(Path(manifest).read_text())
    except (OSError, ValueError):
        return {}
    return contents if isinstance(contents, dict) else {}


def differing(manifest: str | Path | dict,
              installed: dict[str, str] | None = None) -> dict[str, tuple[str, str | None]]:
    """``{package: (committed version, installed version or None)}`` for every package of the manifest's
    ``versions`` that this environment has in another version (or not at all); empty without a readable manifest.
    ``manifest``: its path, or its contents already read."""
    from tgpo.provenance import package_versions

    committed = _loaded(manifest).get("versions")
    committed = committed if isinstance(committed, dict) else {}
    names = tuple(k for k in committed if k not in NOT_COMPARED)
    installed = package_versions(names) if installed is None else installed
    return {k: (committed[k], installed.get(k)) for k in names if installed.get(k) != committed[k]}


#: CPU vendors as /proc/cpuinfo's model name spells them.
VENDORS = ("Intel", "AMD")


def vendor(cpu_model: str | None) -> str | None:
    """``Intel``, ``AMD``, or the model name itself for another vendor (None when unknown)."""
    return next((v for v in VENDORS if cpu_model and v in cpu_model), cpu_model or None)


def other_cpu(manifest: str | Path | dict, cpu_model: str | None = None) -> tuple[str, str] | None:
    """``(committed CPU model, this CPU's model)`` when their vendors differ; None when they agree or either is
    unknown. ``manifest``: its path, or its contents already read."""
    from repro.manifest import machine

    recorded = _loaded(manifest).get("machine")
    committed = recorded.get("cpu_model") if isinstance(recorded, dict) else None
    here = machine()["cpu_model"] if cpu_model is None else cpu_model
    if vendor(committed) is None or vendor(here) is None or vendor(committed) == vendor(here):
        return None
    return committed, here


def note(script: str, manifest: str | Path, installed: dict[str, str] | None = None,
         cpu_model: str | None = None) -> str | None:
    """The one line (None when the versions and the CPU vendor agree, or there is no committed manifest)."""
    contents = _loaded(manifest)  # read once for both comparisons
    changed, cpu = differing(contents, installed), other_cpu(contents, cpu_model)
    if not changed and not cpu:
        return None
    what = []
    if changed:
        what.append("library versions differ: " + ", ".join(f"{k} {now or 'not installed'} (committed {then})"
                                                             for k, (then, now) in changed.items()))
    if cpu:
        what.append(f"the CPU vendor differs: {cpu[1]} (committed on {cpu[0]}; MKL keeps the pinned AVX2 branch only "
                    "on Intel CPUs, so trained runs differ in the last bits and RL amplifies them)")
    fix = " (install requirements/lock.txt for the pinned versions)" if changed else ""
    return f"{script}: note: against {manifest}, {'; '.join(what)}; results may differ from the committed ones{fix}"


def report(script: str, manifest: str | Path) -> None:
    """Print :func:`note` on stderr when there is one."""
    line = note(script, manifest)
    if line:
        print(line, file=sys.stderr, flush=True)
