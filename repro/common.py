"""What every reproduction script shares: profiles, output folders, manifests, seed statistics.

Scripts in ``repro/`` are the only places that know about profiles and files on disk (ARCHITECTURE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from tgpo.provenance import git_sha, package_versions

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "repro" / "configs"
RESULTS = REPO / "results"
#: Trained lab models, logs and the run cache (not committed); TGPO_RUNS_DIR moves it (tests use a tmp dir).
RUNS = Path(os.environ.get("TGPO_RUNS_DIR", REPO / "runs"))
PROFILES = ("lab", "smoke", "paper")


def base_parser(description: str, default_seeds: str = "profile default") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="lab",
                        help="lab: tiny models on a CPU (minutes); smoke: a few steps, one seed (CI); "
                             "paper: the paper's Qwen models on GPUs")
    parser.add_argument("--seeds", type=int, default=None, help=f"number of seeds ({default_seeds})")
    parser.add_argument("--output-dir", type=Path, default=None, help="default: results/<profile>/")
    parser.add_argument("--workers", type=int, default=None, help="parallel training runs (default: CPU cores)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit without training")
    return parser


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``; nested mappings merge, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_config(path: Path) -> dict:
    """A YAML config; an ``inherit: other.yaml`` key (relative to the file) is loaded first and overridden."""
    if not path.exists():
        raise SystemExit(f"config {path} does not exist")
    cfg = yaml.safe_load(path.read_text()) or {}
    parent = cfg.pop("inherit", None)
    return deep_merge(read_config((path.parent / parent).resolve()), cfg) if parent else cfg


def load_profile_config(profile: str, name: str) -> dict:
    """``repro/configs/<profile>/<name>.yaml`` (paper: ``repro/configs/paper/tables/<name>.yaml``, beside the
    training configs the table's rows name), with inheritance resolved."""
    path = CONFIGS / profile / ("tables" if profile == "paper" else "") / f"{name}.yaml"
    if not path.exists():
        raise SystemExit(f"no config for profile {profile!r}: {path} does not exist")
    return read_config(path)


def prepare_output_dir(path: Path, outputs: list[str]) -> Path:
    """Create ``path``; earlier outputs there are moved to ``path/previous/<timestamp>/`` (and said so),
    never overwritten silently."""
    path.mkdir(parents=True, exist_ok=True)
    existing = [path / name for name in outputs if (path / name).exists()]
    if existing:
        stamp = datetime.fromtimestamp((path / outputs[0]).stat().st_mtime if (path / outputs[0]).exists()
                                       else time.time(), tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        archive = path / "previous" / stamp
        archive.mkdir(parents=True, exist_ok=True)
        for item in existing:
            shutil.move(str(item), archive / item.name)
        print(f"[repro] earlier results moved to {archive.relative_to(REPO) if archive.is_relative_to(REPO) else archive}")
    return path


@dataclass
class Manifest:
    """How a result was made: written next to it as ``manifest.json``."""

    script: str
    profile: str
    seeds: list[int]
    config: dict
    started: float = field(default_factory=time.time)
    extra: dict = field(default_factory=dict)

    def write(self, out_dir: Path, name: str = "manifest.json") -> Path:
        record = {
            "script": self.script,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "profile": self.profile,
            "seeds": self.seeds,
            "git_sha": git_sha(),
            "started_utc": datetime.fromtimestamp(self.started, tz=timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.time() - self.started, 1),
            "machine": {"platform": platform.platform(), "processor": platform.machine()},
            "versions": package_versions(),
            "config": self.config,
            **self.extra,
        }
        target = out_dir / name
        target.write_text(json.dumps(record, indent=2, default=str) + "\n")
        return target
