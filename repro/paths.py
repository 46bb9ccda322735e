"""Where the reproduction reads and writes: the repository, its table configs, results and runs."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "repro" / "configs"
RESULTS = REPO / "results"
#: Folders whose changes are results, not code: a reproduction run writes several tables in turn, and the second
#: must not be stamped ``-dirty`` by the first.
OUTPUT_DIRS = ("results",)


def runs_dir() -> Path:
    """Trained lab models, logs and the run cache (not committed); ``TGPO_RUNS_DIR`` moves it (tests use a tmp dir)."""
    return Path(os.environ.get("TGPO_RUNS_DIR") or REPO / "runs")
