"""The tiny offline builders, re-exported from :mod:`tgpo.testing` (where the bench and the GPU check find them).

``build_tokenizer`` reads this module's ``CHARS`` at call time, so a test that swaps ``tiny_models.CHARS`` builds a
tokenizer whose id space differs; new tests pass ``chars=`` to :func:`tgpo.testing.build_tokenizer` instead.
"""

from __future__ import annotations

from tgpo import testing
from tgpo.testing import CHAT_TEMPLATE, SPECIAL_TOKENS, WORDS, build_model, save_model, save_pair  # noqa: F401

CHARS = testing.CHARS


def build_tokenizer(chat_template: bool = True, extra_tokens=()):
    return testing.build_tokenizer(chat_template=chat_template, extra_tokens=extra_tokens or (), chars=CHARS)
