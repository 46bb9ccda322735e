"""What each position of a lab completion is, read from the world's grammar (:mod:`tgpo.lab.world`).

A step is ``a+b=c;`` (style S) or ``b plus a is c. `` (style T); the completion ends in ``\\boxed{answer}`` and EOS.
Tokens are the lab tokenizer's (one per character, ``\\boxed{`` whole, ``<eos>``). Each token gets a *class*, and each
class belongs to a *group*:

========== ==================================================================================================
group      classes
========== ==================================================================================================
content    ``operand`` (an operand digit after a step's first digit), ``result`` (a digit of a step's sum),
           ``answer`` (a digit inside ``\\boxed{}``)
style      ``order`` (a step's first digit: which operand comes first is where S and T differ),
           ``connective`` (``+``, ``=``, the letters of ``plus``/``is``), ``separator`` (spaces)
structure  ``step_end`` (``;`` or ``.``), ``box`` (``\\boxed{`` and its ``}``), ``end`` (EOS)
other      ``other`` (anything the grammar has no place for)
========== ==================================================================================================

:func:`first_error` finds where a completion first leaves every correct solution of its problem (any mix of the two
styles), and which tokens would have kept it correct there.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

from tgpo.lab.tokenizer import BOXED, EOS

GROUPS: dict[str, tuple[str, ...]] = {
    "content": ("operand", "result", "answer"),
    "style": ("order", "connective", "separator"),
    "structure": ("step_end", "box", "end"),
    "other": ("other",),
}
CLASSES: tuple[str, ...] = tuple(c for classes in GROUPS.values() for c in classes)
GROUP_OF: dict[str, str] = {c: g for g, classes in GROUPS.items() for c in classes}
STEP_ENDS = (";", ".")
CONNECTIVE_SYMBOLS = ("+", "=")


def completion_tokens(text: str, eos: bool = False) -> list[str]:
    """``text`` split as the lab tokenizer splits it (``\\boxed{`` whole, else one token per character); with ``eos``,
    ``<eos>`` appended."""
    out, i = [], 0
    while i < len(text):
        if text.startswith(BOXED, i):
            out.append(BOXED)
            i += len(BOXED)
        else:
            out.append(text[i])
            i += 1
    return out + [EOS] if eos else out


def position_classes(tokens: Sequence[str]) -> list[str]:
    """One class (:data:`CLASSES`) per token of a completion. Within a step, each connective (``+``/``=``, or a word)
    moves from the first operand (field 0) to the second (1) to the result (2); a step end starts a new step."""
    labels: list[str] = []
    step_start, field, in_word, in_box = True, 0, False, False
    for tok in tokens:
        label = "other"
        if tok == EOS:
            label = "end"
        elif tok == BOXED:
            label, in_box = "box", True
        elif in_box:
            if tok.isdigit():
                label = "answer"
            elif tok == "}":
                label, in_box = "box", False
        elif tok.isdigit():
            label = "order" if step_start else ("operand" if field < 2 else "result")
            step_start = False
        elif tok in CONNECTIVE_SYMBOLS or tok.isalpha():
            label = "connective"
            if tok in CONNECTIVE_SYMBOLS or not in_word:
                field += 1
        elif tok == " ":
            label = "separator"
        elif tok in STEP_ENDS:
            label, step_start, field = "step_end", True, 0
        in_word = tok.isalpha() and len(tok) == 1
        labels.append(label)
    return labels


def correct_solutions(operands: Sequence[int]) -> list[list[str]]:
    """Every correct completion of a problem (each step in style S or T), as tokens ending in ``<eos>``."""
    from tgpo.lab.world import solution

    n_steps = len(operands) - 1
    return [completion_tokens(solution(operands, "".join(styles)), eos=True) for styles in product("ST", repeat=n_steps)]


def first_error(operands: Sequence[int], tokens: Sequence[str]) -> tuple[int, frozenset[str]] | None:
    """``(index, tokens that were correct there)`` of the first token of ``tokens`` that no correct solution
    (:func:`correct_solutions`) has after the same prefix; ``None`` when every token fits one (a correct completion,
    or a prefix of one)."""
    alive = correct_solutions(operands)
    for i, tok in enumerate(tokens):
        allowed = frozenset(s[i] for s in alive if len(s) > i)
        if tok not in allowed:
            return i, allowed
        alive = [s for s in alive if len(s) > i and s[i] == tok]
    return None


def operands_of(prompt: str) -> list[int]:
    """The operands of a lab prompt (``"3+7+5+8="`` -> ``[3, 7, 5, 8]``)."""
    return [int(x) for x in prompt.rstrip("=").split("+")]
