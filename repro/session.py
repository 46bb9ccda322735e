"""What every script does before and after its own part: parse, load the table config, plan, archive earlier
outputs; then run the plan and save the runs and the manifest.

A script reads top to bottom — parse (:func:`repro.options.parse_args`), plan (:func:`repro.table_config.load_table`,
:func:`repro.planning.plan_runs`), run (:func:`repro.planning.run_plan`), write (:mod:`repro.tables`,
:mod:`repro.plots`, :func:`repro.manifest.save_runs`) — and is started by :func:`repro.options.cli`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from repro import paths, planning, redraw, run_lock, versions
from repro.manifest import Manifest, save_runs
from repro.options import config_name, output_dir, output_stem, parse_args
from repro.planning import Plan
from repro.table_config import PROFILES, Row, Table, UsageError, load_table


@dataclass
class Session:
    """What every script does before and after its own part: parsed options, the table config, the output stem, the
    plan, the (archived) output folder and the manifest; :meth:`run` runs the plan, :meth:`finish` saves the runs
    and the manifest."""

    name: str
    args: argparse.Namespace
    table: Table
    stem: str
    plan: Plan
    out_dir: Path
    manifest: Manifest

    records_source: Path | None = None  # --redraw: the committed records file the figures are drawn from

    @property
    def redraw(self) -> bool:
        """``--redraw``: draw the figures from committed records; write nothing else (:mod:`repro.redraw`)."""
        return bool(getattr(self.args, "redraw", False))

    def run(self, title: str) -> list[dict]:
        if self.redraw:
            self.records_source, records = redraw.committed_records(self.plan, self.args, self.out_dir, self.stem)
            return records
        return planning.run_plan(self.plan, self.args, desc=f"{title} ({self.args.profile}, {self.args.preset})")

    def redrawn(self, records: list[dict], figures: Sequence[str]) -> bool:
        """With ``--redraw``: note the redrawn ``figures`` in the manifest, say where they are and return True (the
        script writes nothing else); False otherwise."""
        if not self.redraw:
            return False
        self.finish(records, figures)
        print(f"[{self.name}] wrote {', '.join(str(self.out_dir / f) for f in figures)}")
        return True

    def finish(self, records: list[dict], figures: Sequence[str] = ()) -> None:
        """Save the runs and the manifest; with ``--redraw``, note in the manifest how ``figures`` were redrawn."""
        if self.redraw:
            redraw.note(self.manifest, self.out_dir, self.stem, records, self.records_source, list(figures))
            return
        save_runs(records, self.out_dir, self.stem)
        self.manifest.write(self.out_dir, self.stem, records)


def start(name: str, doc: str, argv: Sequence[str] | None, suffixes: Sequence[str], *, table: str | None = None,
          profiles: Sequence[str] = PROFILES, rows: Callable[[Table], Sequence[Row]] | None = None,
          figures: bool = True) -> Session | int:
    """Parse, load the table config (``table``, default ``name``), plan; with ``--dry-run`` print the plan and return
    its exit code; with ``--redraw`` start a session that draws from committed records; else check that the plan can run here and archive earlier outputs (``<stem><suffix>``)."""
    args = parse_args(name, doc, argv, profiles=profiles, figures=figures)
    config = load_table(args.profile, getattr(args, "config", None) or table or name)
    stem = output_stem(config_name(args, name), args, config)
    plan = planning.plan_runs(config, args, rows=rows(config) if rows else None, stem=stem)
    if args.dry_run:
        return planning.print_plan(plan)
    if args.redraw:  # nothing trains and only figures are rewritten (git keeps the earlier ones)
        return Session(name, args, config, stem, plan, output_dir(args), Manifest(name, args, config, plan.seeds))
    planning.check_ready(plan)
    run_lock.acquire(output_dir(args), "results")  # one run at a time into these outputs, held until the script ends
    if plan.lab:
        run_lock.acquire(paths.runs_dir() / args.profile, "lab runs")  # and into its run cache (before anything moves)
    versions.report(name, paths.RESULTS / args.profile / f"{stem}_manifest.json")  # against the committed results
    out_dir = archive(output_dir(args), [stem + s for s in suffixes])
    return Session(name, args, config, stem, plan, out_dir, Manifest(name, args, config, plan.seeds))


def archive(out_dir: Path, names: Iterable[str]) -> Path:
    """Create ``out_dir``; earlier outputs of these names move to ``previous/<time>/`` (never overwritten). An output
    folder that is a file or cannot be written stops the script (one line) before anything moves."""
    from tgpo.outputs import archive_existing

    existing = Path(out_dir)
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--output-dir {out_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise UsageError(f"--output-dir {out_dir}: {existing} is not writable")
    archive_existing(out_dir, list(names))
    return out_dir
