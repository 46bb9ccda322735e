"""The one grader, for the RL reward and for evaluation: the strict grade and the authors' grade
(docs/method.md §4).

Public verdicts (:mod:`tgpo.grading.verdicts`): :func:`math_correct`, :func:`math_correct_batch`,
:func:`choice_correct`, :func:`grade_batch` (both grades of many completions at once, what the lm-eval tasks
use) and :func:`authors_reward_v3_batch` (the authors' training reward). Inside the package, each module has one
job and the imports run one way (docs/architecture.md):

- ``text`` — pure text helpers (think blocks, boxes, letters, the strict grade's in-caller fast paths);
- ``oat`` — the oat-compatible boxed grader, half of the authors' rule;
- ``mathverify`` — Math-Verify as each grade calls it (run in the workers), and :func:`grader_versions`;
- ``mv_compat`` — math-verify 0.6.0's behaviour (the authors' pin) for the authors' grade, on the installed 0.9;
- ``jobs`` — the typed worker jobs and their verdicts;
- ``cache`` — the one verdict cache;
- ``pool`` — the worker processes that bound every verdict's compute;
- ``verdicts`` — the public functions above.

No module here imports TRL, lm-eval or transformers.
"""

from __future__ import annotations

from tgpo.grading.mathverify import AUTHORS_MATH_VERIFY, grader_versions
from tgpo.grading.pool import warmup
from tgpo.grading.text import (
    SMALL_GOLD,
    SMALL_GOLD_REL_TOL,
    extract_choice,
    extract_last_boxed,
    strip_think,
)
from tgpo.grading.verdicts import (
    PROTOCOLS,
    VERDICT_TIMEOUT_S,
    Verdicts,
    authors_reward_v3_batch,
    choice_correct,
    grade_batch,
    math_correct,
    math_correct_batch,
)

__all__ = [
    "AUTHORS_MATH_VERIFY",
    "PROTOCOLS",
    "SMALL_GOLD",
    "SMALL_GOLD_REL_TOL",
    "VERDICT_TIMEOUT_S",
    "Verdicts",
    "authors_reward_v3_batch",
    "choice_correct",
    "extract_choice",
    "extract_last_boxed",
    "grade_batch",
    "grader_versions",
    "math_correct",
    "math_correct_batch",
    "strip_think",
    "warmup",
]
