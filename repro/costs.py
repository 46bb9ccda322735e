"""What each committed result cost to make, read from its manifest and runs file (nothing trains):

    python -m repro.costs [--profile lab] [--output-dir DIR]

One row per ``<stem>_manifest.json`` in ``results/<profile>/``: the command, the commit and machine it ran on, when,
its runs (distinct runs, and how many came from the run cache), the summed training + evaluation time of all its runs
(what it costs from an empty cache; each record keeps the times of the job that trained it) and of those it trained
itself, and the script's wall time (a result rewritten from the cache or redrawn from committed records: that of the
rewrite).
Also the distinct runs of the results ``nox -s reproduce_all`` writes (:data:`REPRODUCE_ALL`), shared between them as
the run cache shares them, and their summed time: what that command costs from an empty cache. Writes ``costs.md``
and ``costs.csv`` beside the results, so that every time the docs quote comes from a file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from repro import options
from repro.paths import RESULTS
from repro.table_config import LAB_PROFILES, UsageError
from tgpo.cli import output_folder

NAME = "costs"
MANIFEST = "_manifest.json"
#: The results ``nox -s reproduce_all`` writes at the configs' seeds (repro/reproduce_all.py's scripts; Figures 4 and 6
#: and 2 plot the tables' runs; the audit trains nothing).
REPRODUCE_ALL = ("table1", "table2", "table3", "figure2", "figure4", "figure6", "figure5", "sweep")


def result_costs(folder: Path) -> pd.DataFrame:
    """One row per manifest in ``folder`` (see the module docstring), sorted by stem."""
    rows = []
    for path in sorted(folder.glob(f"*{MANIFEST}")):
        stem = path.name.removesuffix(MANIFEST)
        made = _read_json(path)
        runs_file = folder / f"{stem}_runs.json"
        records = _read_json(runs_file) if runs_file.exists() else None
        machine = made.get("machine") or {}
        row = {"result": stem, "command": made.get("command"), "git_sha": (made.get("git_sha") or "")[:7],
               "started_utc": made.get("started_utc"), "cpu": machine.get("cpu_model"),
               "kernels": machine.get("job_kernels_isa"), "wall_min": _minutes(made.get("wall_time_s")),
               "redrawn": bool(made.get("redrawn"))}
        if records is not None:
            row.update(_run_costs(records))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("runs", "reused"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def combined(folder: Path, stems=REPRODUCE_ALL) -> dict:
    """The distinct runs of the results ``stems`` in ``folder`` together (a run several results share counts once)
    and their summed train + eval minutes; the stems without a runs file are listed as ``missing``."""
    records, missing = [], []
    for stem in stems:
        path = folder / f"{stem}_runs.json"
        if not path.exists():
            missing.append(stem)
            continue
        records += _read_json(path)
    together = _run_costs(records)
    return {"runs": together["runs"], "all_runs_min": together["all_runs_min"], "missing": missing}


def _read_json(path: Path):
    """A manifest or runs file; one line naming it when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: cannot be read ({err})") from None


def _run_costs(records: list[dict]) -> dict:
    """Distinct runs (by cache key; a row that reuses another's run counts once), how many were reused from the
    cache, and the summed train + eval minutes of all of them and of those trained here."""
    by_key = {}
    for rec in records:
        key = (rec.get("cache") or {}).get("key") or rec.get("name")
        by_key.setdefault(key, rec)
    new = [r for r in by_key.values() if not (r.get("cache") or {}).get("reused")]
    return {"runs": len(by_key), "reused": len(by_key) - len(new), "all_runs_min": _job_minutes(by_key.values()),
            "new_runs_min": _job_minutes(new)}


def _job_minutes(records) -> float:
    return _minutes(sum(float(r.get("train_seconds") or 0) + float(r.get("eval_seconds") or 0) for r in records))


def _minutes(seconds) -> float | None:
    return None if seconds is None else round(float(seconds) / 60.0, 1)


def render(frame: pd.DataFrame, profile: str, together: dict | None = None) -> str:
    listed = frame.drop(columns=["command"])  # the commands are long: they stay in costs.csv
    shown = listed.astype(object).where(listed.notna(), "—")
    whole = "" if not together else (
        f"\n`nox -s reproduce_all` ({', '.join(s for s in REPRODUCE_ALL if s not in together['missing'])}; the runs "
        f"they share counted once): {together['runs']} distinct runs, {together['all_runs_min']:.0f} minutes of "
        f"training + evaluation, about {together['all_runs_min'] / 120:.1f} hours on 2 workers from an empty cache"
        f"{'; no runs file for ' + ', '.join(together['missing']) if together['missing'] else ''}.\n")
    return (f"# Costs of the committed {profile} results\n\nFrom each result's manifest and runs file "
            f"(`python -m repro.costs`; nothing trains). `runs`: distinct runs; `reused`: taken from the run cache; "
            f"`all_runs_min`: summed training + evaluation minutes of its runs, each as timed when it was trained "
            f"(on 2 workers a script takes about half); `new_runs_min`: of those trained for this result; `wall_min`: "
            f"the script's wall time (for a result rewritten from the cache or `redrawn` from committed records, that "
            f"of the rewrite). Commands are in `costs.csv`.\n\n"
            f"{shown.to_markdown(index=False, disable_numparse=True)}\n{whole}")


def main(argv: list[str] | None = None) -> int:
    parser = options._Parser(prog=f"python -m repro.{NAME}", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--profile", choices=LAB_PROFILES, default="lab")
    parser.add_argument("--output-dir", type=output_folder,
                        help="default: results/<profile>/ (where the manifests are read)")
    args = parser.parse_args(argv)
    folder = RESULTS / args.profile
    frame = result_costs(folder)
    if frame.empty:
        raise UsageError(f"{folder}: no *{MANIFEST} to read")
    out = options.output_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / f"{NAME}.csv", index=False)
    text = render(frame, args.profile, combined(folder))
    (out / f"{NAME}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(options.cli(main))
