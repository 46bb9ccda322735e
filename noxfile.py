"""Sessions: ``tests``, ``lint``, ``reproduce_table1`` (more ``reproduce_*`` and ``bench`` as they land).

Every session installs torch's CPU wheel first (an unpinned ``torch`` would pull a multi-GB CUDA build),
then the project from this checkout. Arguments after ``--`` go to the underlying command.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
TORCH = "torch==2.13.0"


def install_project(session: nox.Session, extras: str = "dev,api") -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest arguments after ``--``)."""
    install_project(session)
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.run("pytest", *(session.posargs or ["-q"]))


def reproduce(session: nox.Session, script: str) -> None:
    """Run ``repro/<script>.py`` (``lab`` profile unless ``-- --profile smoke|paper`` says otherwise)."""
    install_project(session)
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.run("python", f"repro/{script}.py", *session.posargs)


@nox.session(python=PYTHON)
def reproduce_table1(session: nox.Session) -> None:
    """Table 1: every method vs the cross-family teacher (``-- --profile lab|smoke|paper --seeds N``)."""
    reproduce(session, "table1")


@nox.session(python=PYTHON)
def reproduce_table2(session: nox.Session) -> None:
    """Table 2: Table 1 for the smaller student."""
    reproduce(session, "table2")


@nox.session(python=PYTHON)
def reproduce_table3(session: nox.Session) -> None:
    """Table 3: RKL, KDRL, TGPO with the in-family and the cross-family teacher."""
    reproduce(session, "table3")


@nox.session(python=PYTHON)
def reproduce_figure2(session: nox.Session) -> None:
    """Figure 2: RKL dynamics, in-family vs cross-family teacher."""
    reproduce(session, "figure2")


@nox.session(python=PYTHON)
def reproduce_figure4(session: nox.Session) -> None:
    """Figures 4 and 6: training curves of every method (student and smaller student)."""
    reproduce(session, "figure4")


@nox.session(python=PYTHON)
def reproduce_figure5(session: nox.Session) -> None:
    """Figure 5: the guidance-weight schedule ablation."""
    reproduce(session, "figure5")


@nox.session(python=PYTHON)
def reproduce_sweep(session: nox.Session) -> None:
    """The divergence sweep (beyond the paper)."""
    reproduce(session, "sweep")


@nox.session(python=PYTHON)
def reproduce_all(session: nox.Session) -> None:
    """Every table and figure above, reusing shared runs (``-- --profile lab|smoke --seeds N``)."""
    reproduce(session, "reproduce_all")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the library, tasks, reproduction scripts and tests."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "tgpo", "tasks", "repro", "tests", "noxfile.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """What TGPO costs over GRPO on CPU (results/bench/: CSV, PNG, README, manifest); < 10 min on 2 cores."""
    install_project(session)
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.run("python", "repro/bench.py", *session.posargs)
