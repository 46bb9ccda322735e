"""Deprecated: the oat-compatible grader moved to :mod:`tgpo.grading.oat` (this path stays for one release)."""

from __future__ import annotations

import warnings

from tgpo.grading.oat import last_boxed_content, normalised_forms_equal, oat_boxed_correct

__all__ = ["boxed_reward", "last_boxed_content", "normalised_forms_equal", "oat_boxed_correct"]


def boxed_reward(response: str, gold: str) -> bool:
    """Deprecated name of :func:`tgpo.grading.oat.oat_boxed_correct` (not a TRL reward function)."""
    warnings.warn("tgpo.oat_grader.boxed_reward is deprecated: use tgpo.grading.oat.oat_boxed_correct",
                  DeprecationWarning, stacklevel=2)
    return oat_boxed_correct(response, gold)
