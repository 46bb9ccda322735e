"""How a result was made: the manifest and the run records written next to it."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from repro.paths import OUTPUT_DIRS, REPO
from repro.records import write_records
from repro.table_config import BASE, Table


@dataclass
class Manifest:
    """How a result was made: written next to it as ``<stem>_manifest.json``."""

    script: str
    args: argparse.Namespace
    table: Table
    seeds: list[int]
    started: float = field(default_factory=time.time)
    extra: dict = field(default_factory=dict)

    def write(self, out_dir: Path, stem: str, records: list[dict]) -> Path:
        from tgpo.provenance import git_sha, package_versions

        record = {
            "script": self.script,
            "command": " ".join(["python -m repro." + self.script, *sys.argv[1:]]),
            "profile": self.table.profile,
            "preset": self.args.preset,
            "seeds": self.seeds,
            "git_sha": git_sha(REPO, ignore=OUTPUT_DIRS),
            "started_utc": datetime.fromtimestamp(self.started, tz=timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.time() - self.started, 1),
            "machine": machine(),
            "versions": package_versions(),
            "config_file": str(self.table.path.relative_to(REPO) if self.table.path.is_relative_to(REPO)
                               else self.table.path),
            "config": self.table.data,
            "rows": row_provenance(records),
            "cache": cache_summary(records),
            **self.extra,
        }
        target = out_dir / f"{stem}_manifest.json"
        target.write_text(json.dumps(record, indent=2, default=str) + "\n")
        return target


def machine() -> dict:
    """Where the runs ran: the platform, the CPU's model and widest vector instruction set, and the instruction set
    the lab's job processes pin their kernels to (``repro.lab_runner.JOB_ENV``: float32 results depend on it)."""
    from repro.lab_runner import JOB_ENV

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or None)
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), []))
    widest = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else None if not flags else "below avx2"
    return {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
            "cpu_model": model, "cpu_vector_isa": widest, "job_kernels_isa": JOB_ENV.get("ATEN_CPU_CAPABILITY")}


def row_provenance(records: list[dict]) -> dict:
    """Per row label: how its cells were made — method, preset, models, the resolved trainer settings, and each
    run's seed, cache key and seconds."""
    rows: dict[str, dict] = {}
    for rec in records:
        entry = rows.setdefault(rec["label"], {
            "method": rec["method"], "preset": rec.get("preset") if rec["method"] != BASE else None,
            "student": rec.get("student"), "teacher": rec.get("teacher") if rec["method"] != BASE else None,
            "config": rec.get("config"), "trainer": rec.get("trainer_resolved"), "runs": []})
        entry["runs"].append({"seed": rec["seed"], "key": (rec.get("cache") or {}).get("key"),
                              "reused": (rec.get("cache") or {}).get("reused"),
                              "train_seconds": rec.get("train_seconds"), "eval_seconds": rec.get("eval_seconds")})
    return rows


def cache_summary(records: list[dict]) -> dict:
    cached = [r["cache"] for r in records if r.get("cache")]
    return {"runs": len(records), "reused": sum(bool(c["reused"]) for c in cached)}


def save_runs(records: list[dict], out_dir: Path, stem: str) -> Path:
    """Every run's record (scores, per-problem values, curves) as ``<stem>_runs.json``."""
    return write_records(records, out_dir / f"{stem}_runs.json")
