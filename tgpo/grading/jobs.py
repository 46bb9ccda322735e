"""The grader's worker jobs, typed: what the caller could not decide itself and sends to a verdict worker.

A job is a :class:`StrictJob` or an :class:`AuthorsJob` (NamedTuples: hashable, so identical jobs are asked once,
and cheap to send as JSON: :func:`to_wire` / :func:`from_wire`). Every job has a ``gold``; the pool sends the jobs
about one gold to one worker, where the gold is parsed once. :func:`run_job` is a job's verdict, computed where it
runs (a worker process, or the caller where no worker can start).
"""

from __future__ import annotations

from typing import NamedTuple, Union

__all__ = ["AuthorsJob", "Job", "StrictJob", "from_wire", "prepare_worker", "run_job", "to_wire"]


class StrictJob(NamedTuple):
    """The strict grade of a cleaned boxed ``answer`` against a normalised ``gold`` (Math-Verify)."""

    answer: str
    gold: str


class AuthorsJob(NamedTuple):
    """The authors' "any true" rule: Math-Verify on ``mv_text`` (``None``: Math-Verify says no, their split
    found no ``</think>``) or the oat-compatible grader on ``oat_text`` (``""``: oat says no, as in the
    ``authors_v3`` training reward, which has no oat half)."""

    mv_text: str | None
    oat_text: str
    gold: str


Job = Union[StrictJob, AuthorsJob]
_KINDS = {"strict": StrictJob, "authors": AuthorsJob}
_NAMES = {cls: name for name, cls in _KINDS.items()}


def to_wire(job: Job) -> list:
    """A job as a JSON-able list: its kind's name, then its fields."""
    return [_NAMES[type(job)], *job]


def from_wire(item: list) -> Job:
    """The job :func:`to_wire` wrote (``ValueError`` for anything else)."""
    try:
        return _KINDS[item[0]](*item[1:])
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"not a grader job: {item!r:.200}") from e


def run_job(job: Job) -> bool:
    """One job's verdict; never raises: RecursionError, MemoryError, sympy internals all mean "no"."""
    from tgpo.grading.mathverify import authors_math_verify, strict_math_verify
    from tgpo.grading.oat import oat_boxed_correct

    try:
        if isinstance(job, StrictJob):
            return strict_math_verify(job.answer, job.gold)
        if job.mv_text is not None and authors_math_verify(job.mv_text, job.gold):
            return True
        return oat_boxed_correct(job.oat_text, job.gold)
    except BaseException:  # noqa: BLE001
        return False


def prepare_worker() -> None:
    """Import and warm up what verdicts need, in a worker process before it says it is ready (the first
    Math-Verify and oat calls build their parsers)."""
    import math_verify  # noqa: F401
    import pylatexenc.latex2text  # noqa: F401
    import sympy.parsing.sympy_parser  # noqa: F401

    from tgpo.grading.mathverify import keep_more_latex_parses

    keep_more_latex_parses()
    run_job(StrictJob("\\frac{1}{2}", "x+1"))
    run_job(AuthorsJob("so \\boxed{2x}", "so \\boxed{2x}", "x^2"))
