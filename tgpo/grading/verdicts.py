"""The public verdicts of the one grader for reward and evaluation, with two protocols (docs/method.md §4).

Verdict functions, shared by the trainer's reward and by every lm-eval task in ``tasks/``:

- :func:`math_correct` / :func:`math_correct_batch` — free-form math answers;
- :func:`choice_correct` — multiple-choice letters ``A``–``J``;
- :func:`grade_batch` — both protocols for many completions at once, in parallel (what the tasks use).

``protocol="strict"`` (the default and the primary metric):

1. Text up to the last ``</think>`` is dropped. A ``<think>`` that never closes (also one the prompt opened:
   ``prompt_ends_in_think=True``) means the model never reached its answer: wrong.
2. Math: only the **last** ``\\boxed{...}`` (or ``\\fbox{...}``) counts; no unanchored fallback, so a truncated
   output never gets credit for a stray number. Gold and answer are parsed as ``$x$`` with Math-Verify's LaTeX
   and expression extraction and compared with ``verify(gold, answer)``, using the installed math-verify (0.9;
   :func:`tgpo.grading.grader_versions` gives the versions for a manifest). Golds are normalised first:
   integer-valued decimals (AMC's ``142.0``) become integers. Numeric golds with ``0 < |gold| <``
   :data:`SMALL_GOLD` are compared with the relative tolerance :data:`SMALL_GOLD_REL_TOL` (Math-Verify rounds
   to six decimals, which would accept any tiny number for a tiny gold, a wrong sign or exponent included).
3. Choice: the last of ``ANSWER: X``, ``\\boxed{X}`` or "answer is (X)" wins.

``protocol="authors"`` reproduces the authors' evaluation script (``generate_vllm.py --any_true True
--add_oat_evaluate True``), for comparison with their reported numbers:

1. Only when the *prompt* ends in ``<think>\\n`` is the response split: ``"<think>\\n" + response`` is cut at
   ``</think>`` and the part after the first ``</think>`` is graded; without a ``</think>`` Math-Verify says
   wrong and the oat grader sees the unsplit text. Otherwise the **whole** response is graded.
2. Right if Math-Verify accepts it — ``verify(parse("$" + gold + "$"), parse(response))`` with ``parse``'s
   default extraction as math-verify 0.6.0 (the authors' pin) does it: the last ``\\boxed{}`` (with the boxes
   just before it only when "and", "or" or "," alone separate them), else the last LaTeX or plain expression
   anywhere; percentages and letter case as 0.6.0 compares them (:mod:`tgpo.grading.mv_compat`) — **or** the
   oat-compatible boxed grader (:mod:`tgpo.grading.oat`, its Math-Verify calls also as 0.6.0) accepts the last
   ``\\boxed{}``.
3. Choice tasks go through the same math pipeline with the gold letter: a boxed letter (or one Math-Verify
   finds, e.g. ``$C$``) counts; an ``ANSWER: C`` line alone does not.

Bounded verdicts: Math-Verify's own timeouts use ``signal.alarm`` and refuse to run outside the main thread,
so they are switched off and the parsing runs in the worker processes of :mod:`tgpo.grading.pool`. Each
verdict gets :data:`VERDICT_TIMEOUT_S` of compute; one that overruns is wrong. Batches use every worker at once.
Cheap pre-filters (power towers, absurdly long answers) and exact fast paths run in the caller, without any IPC.
A wrong, unparseable or malformed answer is ``False``, never an exception (only an unknown ``protocol`` or
``kind``, a caller's mistake, raises ``ValueError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from tgpo.grading import pool
from tgpo.grading.jobs import AuthorsJob, Job, StrictJob
from tgpo.grading.oat import normalised_forms_equal
from tgpo.grading.text import (
    _PROMPT_THINK_PREFIX,
    _THINK_CLOSE,
    MAX_COMPLETION_CHARS,
    _clean_answer,
    _normalise_gold,
    _normalise_letter,
    _pathological,
    _plain_number_verdict,
    _squash,
    _with_prompt_think,
    extract_choice,
    extract_last_boxed,
    strip_think,
)

__all__ = [
    "PROTOCOLS",
    "VERDICT_TIMEOUT_S",
    "Verdicts",
    "authors_reward_v3_batch",
    "choice_correct",
    "grade_batch",
    "math_correct",
    "math_correct_batch",
]

PROTOCOLS = ("strict", "authors")
#: Compute budget of one verdict, seconds: a verdict that overruns is wrong (its worker is killed and replaced
#: in the background, so the verdict returns at its budget).
VERDICT_TIMEOUT_S = 3.0


class Verdicts(NamedTuple):
    """Both grades of one completion."""

    strict: bool
    authors: bool


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")


# --------------------------------------------------------------------------------------------------------
# In-caller preparation: a verdict decided here, or the worker job that decides it
# --------------------------------------------------------------------------------------------------------


def _strict_job(completion, gold, prompt_ends_in_think: bool) -> bool | StrictJob:
    """The strict verdict if it is decided here, else the worker job that decides it."""
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        gold = str(gold)
    if not isinstance(completion, str) or not isinstance(gold, str) or len(completion) > MAX_COMPLETION_CHARS:
        return False
    answer = strip_think(_with_prompt_think(completion, prompt_ends_in_think))
    if answer is None:
        return False
    boxed = extract_last_boxed(answer)
    if boxed is None:
        return False
    pred, gold_s = _clean_answer(boxed), _normalise_gold(gold)
    if not pred or not gold_s:
        return False
    if _squash(pred) == _squash(gold_s):
        return True
    fast = _plain_number_verdict(pred, gold_s)
    if fast is not None:
        return fast
    if _pathological(pred) or _pathological(gold_s):
        return False
    return StrictJob(pred, gold_s)


def _authors_job(completion, gold, prompt_ends_in_think: bool) -> bool | AuthorsJob:
    """The authors' verdict if it is decided here, else the worker job that decides it."""
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        gold = str(gold)
    if not isinstance(completion, str) or not isinstance(gold, str) or len(completion) > MAX_COMPLETION_CHARS:
        return False
    text, mv_text = completion, completion
    if prompt_ends_in_think:
        text = _PROMPT_THINK_PREFIX + completion
        parts = text.split(_THINK_CLOSE)
        if len(parts) >= 2:  # their script grades parts[1]: the text after the *first* </think>
            text = mv_text = parts[1]
        else:
            mv_text = None  # Math-Verify says wrong; the oat grader still sees the unsplit text
    if normalised_forms_equal(text, gold):  # the OR is decided: no Math-Verify needed
        return True
    return AuthorsJob(mv_text, text, gold)


# --------------------------------------------------------------------------------------------------------
# Public verdicts
# --------------------------------------------------------------------------------------------------------


def _math_job(completion, gold, protocol: str, prompt_ends_in_think: bool) -> bool | Job:
    try:
        if protocol == "strict":
            return _strict_job(completion, gold, prompt_ends_in_think)
        return _authors_job(completion, gold, prompt_ends_in_think)
    except Exception:  # noqa: BLE001 - a verdict never raises
        return False


def _choice_job(completion, gold, protocol: str, prompt_ends_in_think: bool) -> bool | Job:
    letter = _normalise_letter(gold)
    if letter is None or not isinstance(completion, str):
        return False
    if protocol == "authors":  # their script grades letters with the math pipeline
        return _authors_job(completion, letter, prompt_ends_in_think)
    try:
        return extract_choice(_with_prompt_think(completion, prompt_ends_in_think)) == letter
    except Exception:  # noqa: BLE001 - a verdict never raises
        return False


def math_correct(
    completion: str,
    gold: str,
    *,
    protocol: str = "strict",
    prompt_ends_in_think: bool = False,
    timeout: float = VERDICT_TIMEOUT_S,
) -> bool:
    """Whether ``completion`` answers ``gold`` under ``protocol`` (``"strict"`` or ``"authors"``).

    ``prompt_ends_in_think``: the prompt itself ended in ``<think>\\n`` (the model's chat template opens the
    think block). Never raises; returns within ``timeout`` seconds of compute, from any thread.
    """
    _check_protocol(protocol)
    return pool.run([[_math_job(completion, gold, protocol, prompt_ends_in_think)]], timeout)[0][0]


def choice_correct(
    completion: str,
    gold: str,
    *,
    protocol: str = "strict",
    prompt_ends_in_think: bool = False,
    timeout: float = VERDICT_TIMEOUT_S,
) -> bool:
    """Whether ``completion`` picks the letter ``gold`` (``A``–``J``) under ``protocol``. Never raises."""
    _check_protocol(protocol)
    return pool.run([[_choice_job(completion, gold, protocol, prompt_ends_in_think)]], timeout)[0][0]


def _per_item(golds, n: int) -> list:
    if isinstance(golds, (list, tuple)):
        if len(golds) != n:
            raise ValueError(f"{n} completions but {len(golds)} golds")
        return list(golds)
    return [golds] * n


def math_correct_batch(
    completions: Sequence[str],
    golds: Sequence[str] | str,
    *,
    protocol: str = "strict",
    prompt_ends_in_think: bool = False,
    timeout: float = VERDICT_TIMEOUT_S,
) -> list[bool]:
    """:func:`math_correct` over many completions (one gold for all, or one each), verdicts in parallel on
    every worker (the k samples of one problem, a reward batch)."""
    _check_protocol(protocol)
    golds = _per_item(golds, len(completions))
    groups = [[_math_job(c, g, protocol, prompt_ends_in_think)] for c, g in zip(completions, golds)]
    return [g[0] for g in pool.run(groups, timeout)]


def grade_batch(
    completions: Sequence[str],
    golds: Sequence[str] | str,
    *,
    kind: str = "math",
    prompt_ends_in_think: bool = False,
    timeout: float = VERDICT_TIMEOUT_S,
) -> list[Verdicts]:
    """Both grades (strict, authors) of every completion, all verdicts in parallel. ``kind``: ``"math"`` or
    ``"choice"``; ``golds``: one for all, or one each."""
    if kind not in ("math", "choice"):
        raise ValueError(f"kind must be math or choice, not {kind!r}")
    golds = _per_item(golds, len(completions))
    make = _math_job if kind == "math" else _choice_job
    groups = [[make(c, g, p, prompt_ends_in_think) for p in PROTOCOLS] for c, g in zip(completions, golds)]
    return [Verdicts(*verdicts) for verdicts in pool.run(groups, timeout)]


def authors_reward_v3_batch(
    completions: Sequence[str], golds: Sequence[str] | str, *, timeout: float = VERDICT_TIMEOUT_S
) -> list[bool]:
    """The authors' *training* reward (their ``reward_impl_version=3``, docs/method.md §3), as verdicts.

    ``<think>\n`` is prefixed to the response; without a ``</think>`` after it the verdict is wrong; otherwise
    Math-Verify parses the text after the first ``</think>`` with its default extraction (no ``\\boxed{}``
    needed) against ``$gold$``. Unlike the authors' evaluation rule there is no oat grader beside it.
    """
    golds = _per_item(golds, len(completions))
    groups = []
    for completion, gold in zip(completions, golds):
        job: bool | AuthorsJob = False
        if isinstance(completion, str) and len(completion) <= MAX_COMPLETION_CHARS:
            parts = (_PROMPT_THINK_PREFIX + completion).split(_THINK_CLOSE)
            if len(parts) >= 2:
                job = AuthorsJob(parts[1], "", str(gold))  # an empty oat text: the oat half always says no
        groups.append([job])
    return [g[0] for g in pool.run(groups, timeout)]
