"""Redrawing figures from committed run records, without training (``--redraw`` of every figure-making script).

A script's figures are drawn from run records (``<stem>_runs.json``: every run's curves and scores). With ``--redraw``
the script reads the records of its plan from the committed files instead of running the plan: its own
``<stem>_runs.json``, else the runs of the table it plots at the same preset and seeds (Figure 4 plots Table 1's runs,
so ``figure4 --seeds 6`` reads ``table1_6seeds_runs.json``). Only figures are written, and a script's tables drawn
from the runs alone that it lists with them (the sweep's ``sweep_paired.csv``). The manifest says how the
figure was made: an existing manifest of the same runs gets a ``redrawn`` entry (command, commit, time, the records
file and its sha256); a figure without one gets a new manifest: a copy of the records' own manifest (how the runs
were made: commit, versions, machine, config; ``runs_made_by`` names it) with the figure's rows, its command and the
``redrawn`` entry.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from repro.manifest import Manifest
from repro.options import output_stem
from repro.paths import OUTPUT_DIRS, REPO
from repro.planning import Plan
from repro.table_config import UsageError


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def committed_records(plan: Plan, args, out_dir: Path, stem: str) -> tuple[Path, list[dict]]:
    """The records of every (row, seed) of ``plan``, from the first committed file that holds them all (see the
    module docstring), in plan order. None holds them: :class:`UsageError` naming the files looked at."""
    wanted = [(job.label, job.seed) for job in plan.jobs]
    candidates = list(dict.fromkeys([out_dir / f"{stem}_runs.json",
                                     out_dir / f"{output_stem(plan.table.name, args, plan.table)}_runs.json"]))
    for path in candidates:
        if not path.exists():
            continue
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UsageError(f"--redraw: {path} cannot be read ({err})") from None
        found = {(rec.get("label"), rec.get("seed")): rec for rec in records if isinstance(rec, dict)}
        if all(key in found for key in wanted):
            return path, [found[key] for key in wanted]
    raise UsageError(f"--redraw: no committed records hold every run of this plan ({len(wanted)} runs; looked in "
                     f"{', '.join(_relative(p) for p in candidates)}); run the script without --redraw")


def redrawn_entry(script: str, source: Path, figures: list[str]) -> dict:
    """How a figure was redrawn: the command, the commit, the time and the records (file and sha256)."""
    from tgpo.provenance import git_sha

    return {"command": " ".join(["python -m repro." + script, *sys.argv[1:]]),
            "git_sha": git_sha(REPO, ignore=OUTPUT_DIRS),
            "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "records": _relative(source), "records_sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest(),
            "figures": figures}


def note(manifest: Manifest, out_dir: Path, stem: str, records: list[dict], source: Path, figures: list[str]) -> Path:
    """Record the redraw in ``<stem>_manifest.json`` (see the module docstring). A new manifest copies how the runs
    were made (commit, versions, machine, config) from the records' own manifest, and lists only the figure's rows."""
    from repro.manifest import cache_summary, row_provenance

    target = out_dir / f"{stem}_manifest.json"
    entry = redrawn_entry(manifest.script, source, figures)
    made = json.loads(target.read_text(encoding="utf-8")) if target.exists() else None
    if made is None or made.get("seeds") != manifest.seeds:
        runs_manifest = Path(str(source).removesuffix("_runs.json") + "_manifest.json")
        if not runs_manifest.exists():
            manifest.extra = {**manifest.extra, "redrawn": entry}
            return manifest.write(out_dir, stem, records)
        made = json.loads(runs_manifest.read_text(encoding="utf-8"))
        made.update(script=manifest.script, command=entry["command"], rows=row_provenance(records),
                    cache=cache_summary(records), runs_made_by=_relative(runs_manifest))
    made["redrawn"] = entry
    target.write_text(json.dumps(made, indent=2, default=str) + "\n")
    return target
