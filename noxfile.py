"""Sessions: ``tests``, ``lint``, ``reproduce_table1`` (the main job), ``reproduce_all``, one parametrized
``reproduce(<script>)`` per reproduction script (``nox -s "reproduce(table2)"``), and ``bench``.

Every session installs torch's CPU wheel first (an unpinned ``torch`` would pull a multi-GB CUDA build), then the
project from this checkout. Arguments after ``--`` go to the underlying command. The reproduction scripts are modules
of the ``repro`` package, run from the repository root (``python -m repro.<script>``).
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
TORCH = "torch==2.13.0"
#: Reproduction scripts (``repro/<script>.py``), each the session ``reproduce(<script>)``.
SCRIPTS = ["table1", "table2", "table3", "figure2", "figure4", "figure5", "sweep", "audit", "recipe_probe",
           "presets_shift"]


def install_project(session: nox.Session, extras: str = "dev,api") -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


def run_script(session: nox.Session, script: str) -> None:
    """``python -m repro.<script>`` (``lab`` profile unless ``-- --profile smoke|paper`` says otherwise)."""
    install_project(session)
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.run("python", "-m", f"repro.{script}", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest arguments after ``--``)."""
    install_project(session)
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
@nox.parametrize("script", SCRIPTS, ids=SCRIPTS)
def reproduce(session: nox.Session, script: str) -> None:
    """One reproduction script, e.g. ``nox -s "reproduce(table2)" -- --profile smoke``: table1-3, figure2, figure4 (and
    6), figure5, sweep, audit (presets), recipe_probe (lab recipe candidates)."""
    run_script(session, script)


@nox.session(python=PYTHON)
def reproduce_table1(session: nox.Session) -> None:
    """The main job: Table 1, every method vs the cross-family teacher (``-- --profile lab|smoke|paper --preset P
    --seeds N``)."""
    run_script(session, "table1")


@nox.session(python=PYTHON)
def reproduce_all(session: nox.Session) -> None:
    """Every table and figure and the presets audit, reusing shared runs (``-- --profile lab|smoke --seeds N``)."""
    run_script(session, "reproduce_all")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the library, tasks, reproduction scripts and tests."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "tgpo", "tasks", "repro", "tests", "noxfile.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """What TGPO costs over GRPO on CPU, and the grader's speed and agreement with oat (results/bench/); about 10 min
    on 2 cores. The grader's part needs the benchmark files: ``TGPO_BENCHMARK_DIR=DIR nox -s bench``."""
    install_project(session)
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.run("python", "repro/bench.py", *session.posargs)
    if os.environ.get("TGPO_BENCHMARK_DIR"):
        session.run("python", "repro/bench_scorer.py")
    else:
        session.warn("TGPO_BENCHMARK_DIR is not set: the grader's throughput and oat agreement (repro/bench_scorer.py) "
                     "were not measured")
