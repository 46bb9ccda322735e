"""Training rewards (TRL reward functions: ``f(completions, answer, **kwargs) -> list[float]``), built on
:mod:`tgpo.grading` (docs/method.md §3).

* ``boxed`` (:func:`strict_boxed_reward`) — 1.0 when the last ``\\boxed{}`` after any think block equals the gold
  answer (the strict grade of :func:`tgpo.grading.math_correct`); the default, and the lab's (its models write no
  think block).
* ``authors_v3`` (:func:`authors_v3_reward`) — the authors' training reward (their ``reward_impl_version=3``):
  ``<think>\\n`` is prefixed to the response, the reward is 0 unless it then contains ``</think>``, and Math-Verify
  parses the text after the **first** ``</think>`` with its default extraction (no ``\\boxed{}`` required), the
  gold wrapped as ``$gold$``.
"""

from __future__ import annotations

import warnings

__all__ = ["REWARD_FUNCTIONS", "authors_v3_reward", "boxed_reward", "completion_text", "strict_boxed_reward"]


def completion_text(completion) -> str:
    """A completion as text: TRL gives a string (plain prompts) or assistant messages (chat prompts)."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion)


def strict_boxed_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 when :func:`tgpo.grading.math_correct` (strict) accepts the completion's final answer, graded as a batch."""
    from tgpo.grading import math_correct_batch  # imported lazily: the grader spins up Math-Verify workers

    texts = [completion_text(c) for c in completions]
    return [float(v) for v in math_correct_batch(texts, [str(a) for a in answer])]


def authors_v3_reward(completions, answer, **kwargs) -> list[float]:
    """The authors' ``reward_impl_version=3`` (:func:`tgpo.grading.authors_reward_v3_batch`), graded as a batch."""
    from tgpo.grading import authors_reward_v3_batch

    texts = [completion_text(c) for c in completions]
    return [float(v) for v in authors_reward_v3_batch(texts, [str(a) for a in answer])]


def boxed_reward(completions, answer, **kwargs) -> list[float]:
    """Deprecated name of :func:`strict_boxed_reward` (kept for one release)."""
    warnings.warn("tgpo.rewards.boxed_reward is deprecated: use strict_boxed_reward", DeprecationWarning, stacklevel=2)
    return strict_boxed_reward(completions, answer, **kwargs)


#: ``TGPOConfig.reward`` -> reward function.
REWARD_FUNCTIONS = {"boxed": strict_boxed_reward, "authors_v3": authors_v3_reward}
