"""A wheel install evaluates: the tasks ship inside the package (tgpo.tasks) and are found without the repo."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmarks"

LIST_TASKS = """
import json, tgpo
from lm_eval.tasks import TaskManager
from tgpo.eval.run import tasks_dir
print(json.dumps({"tgpo": tgpo.__file__, "tasks_dir": str(tasks_dir()),
                  "tasks": TaskManager(include_path=str(tasks_dir()), include_defaults=False).all_tasks}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project built as a wheel and installed without -e (no dependencies) into a folder of its own."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a clean copy: an in-tree build would leave build/ behind and reuse stale files from it
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("tgpo", "tasks"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp / "dist").glob("tgpo-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for member in ("tgpo/tasks/_tgpo_template_yaml", "tgpo/tasks/tgpo_paper.yaml", "tgpo/tasks/utils.py",
                   "tgpo/tasks/lab/tgpo_lab.yaml", "tgpo/tasks/lab/utils.py", "tgpo/resources/system_prompt.txt"):
        assert member in names, member
    target = tmp / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr
    return target


def _run(installed: Path, cwd: Path, *args: str, env_extra=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_wheel_lists_and_evaluates_from_outside_the_repo(installed, tmp_path):
    from stand_in_server import StandInServer, lookup_from_rows

    import tgpo.tasks.utils as tu

    listing = _run(installed, tmp_path, "-c", LIST_TASKS)
    assert listing.returncode == 0, listing.stderr
    found = json.loads(listing.stdout.strip().splitlines()[-1])
    assert found["tgpo"].startswith(str(installed)) and found["tasks_dir"].startswith(str(installed))
    assert {f"tgpo_{b}" for b in tu.BENCHMARKS} | {"tgpo_paper", "tgpo_lab"} <= set(found["tasks"])

    lookup = lookup_from_rows({b: tu.benchmark_rows(b, FIXTURES) for b in tu.BENCHMARKS}, tu.CHOICE_BENCHMARKS)
    out = tmp_path / "out"
    with StandInServer(lookup, mode="boxed") as srv:
        done = _run(installed, tmp_path, "-m", "tgpo.cli", "eval", "--model", "stand-in", "--backend", "api",
                    "--base-url", srv.base_url, "--tasks", "tgpo_math500,tgpo_gpqa_diamond", "--limit", "1",
                    "--num-samples", "1", "--output-dir", str(out), env_extra={"TGPO_BENCHMARK_DIR": str(FIXTURES)})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["task"]: r for r in csv.DictReader((out / "summary.csv").open())}
    for task in ("tgpo_math500", "tgpo_gpqa_diamond"):
        assert float(rows[task]["pass@1"]) == 1.0 and float(rows[task]["pass@1_authors"]) == 1.0


def test_every_package_is_listed_in_pyproject():
    """pyproject lists its packages (tasks/ is mapped in as tgpo.tasks); a new subpackage must be listed too."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "tgpo").rglob("__init__.py")}
    on_disk |= {"tgpo.tasks" + "".join("." + part for part in p.parent.relative_to(ROOT / "tasks").parts)
                for p in (ROOT / "tasks").rglob("__init__.py")}
    assert on_disk <= listed, sorted(on_disk - listed)
    assert config["package-dir"] == {"tgpo.tasks": "tasks", "tgpo.tasks.lab": "tasks/lab"}
