"""Deprecated: the grader moved to :mod:`tgpo.grading` (this path re-exports it for one release)."""

from __future__ import annotations

import warnings

from tgpo.grading import *  # noqa: F403
from tgpo.grading import __all__  # noqa: F401

warnings.warn("tgpo.scoring is deprecated: import from tgpo.grading", DeprecationWarning, stacklevel=2)
