"""What each position of a lab completion is, read from the world's grammar (:mod:`tgpo.lab.world`).

A step is ``a+b=c;`` (style S), ``b plus a is c. `` (style T) or, in world v2, ``a and b gives c, `` (style U), and a
long step carries the operands still to add after its sum (``a+b=c+5+8;``); the completion ends in ``\\boxed{answer}``
and EOS.
Tokens are the lab tokenizer's (one per character, ``\\boxed{`` whole, ``<eos>``). Each token gets a *class*, and each
class belongs to a *group*:

========== ==================================================================================================
group      classes
========== ==================================================================================================
content    ``operand`` (an operand digit after a step's first digit), ``result`` (a digit of a step's sum),
           ``answer`` (a digit inside ``\\boxed{}``), ``carried`` (a digit of an operand a long step carries)
style      ``order`` (a step's first digit: which operand comes first is where S and T differ),
           ``connective`` (``+``, ``=``, the letters of ``plus``/``is``/``and``/``gives``), ``separator`` (spaces)
structure  ``step_end`` (``;``, ``.`` or ``,``), ``box`` (``\\boxed{`` and its ``}``), ``end`` (EOS)
other      ``other`` (anything the grammar has no place for)
========== ==================================================================================================

:func:`first_error` finds where a completion first leaves every correct solution of its problem (any mix of the
world's styles, and of short and long steps where the world has them), and which tokens would have kept it correct
there.
"""

from __future__ import annotations

from collections.abc import Sequence

from tgpo.lab.config import WORLD, WorldConfig
from tgpo.lab.tokenizer import BOXED, EOS

GROUPS: dict[str, tuple[str, ...]] = {
    "content": ("operand", "result", "answer", "carried"),
    "style": ("order", "connective", "separator"),
    "structure": ("step_end", "box", "end"),
    "other": ("other",),
}
CLASSES: tuple[str, ...] = tuple(c for classes in GROUPS.values() for c in classes)
GROUP_OF: dict[str, str] = {c: g for g, classes in GROUPS.items() for c in classes}
STEP_ENDS = (";", ".", ",")
CONNECTIVE_SYMBOLS = ("+", "=")
#: Words that lead to a step's sum (as ``=`` does): a ``+`` after them starts a long step's carried operands.
EQUALS = ("is", "gives")


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
    moves from the first operand (field 0) to the second (1) to the result (2); a ``+`` after ``=`` (or after the word
    ``is``/``gives``) starts the operands a long step carries; a step end starts a new step."""
    labels: list[str] = []
    step_start, field, word, right, carried, in_box = True, 0, "", False, False, False
    for tok in tokens:
        if word and not (tok.isalpha() and len(tok) == 1):  # a word ends: "is"/"gives" lead to the sum
            right, word = right or word in EQUALS, ""
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
            label = "order" if step_start else ("carried" if carried else "operand" if field < 2 else "result")
            step_start = False
        elif tok in CONNECTIVE_SYMBOLS or tok.isalpha():
            label = "connective"
            if tok in CONNECTIVE_SYMBOLS or not word:
                field += 1
            carried = carried or (right and tok == "+")
            right = right or tok == "="
            word += tok if tok.isalpha() else ""
        elif tok == " ":
            label = "separator"
        elif tok in STEP_ENDS:
            label, step_start, field, right, carried = "step_end", True, 0, False, False
        labels.append(label)
    return labels


def has_long_step(classes: Sequence[str]) -> bool:
    """Whether a completion's position classes (:func:`position_classes`) include a long step (class ``carried``:
    world v2's long form)."""
    return "carried" in classes


def writes_long_step(text: str) -> bool:
    """Whether a completion writes a long step (:func:`has_long_step` of its tokens' classes)."""
    return has_long_step(position_classes(completion_tokens(text)))


def step_forms(operands: Sequence[int], world: WorldConfig = WORLD) -> list[list[list[str]]]:
    """Every way ``world`` lets each step of a correct solution be written (its styles; short or long where it has long
    steps), as token lists, one list per step; the last entry is the ``\\boxed{answer}`` and ``<eos>``."""
    from tgpo.lab.world import step_text

    acc, steps = operands[0], []
    for i, b in enumerate(operands[1:]):
        rests = (operands[i + 2 :], ()) if world.long_steps else ((),)
        forms = dict.fromkeys(step_text(acc, b, style, rest) for style in world.styles for rest in rests)
        steps.append([completion_tokens(f) for f in forms])
        acc += b
    return steps + [[completion_tokens(f"{BOXED}{acc}}}", eos=True)]]


def first_error(operands: Sequence[int], tokens: Sequence[str], world: WorldConfig = WORLD
                ) -> tuple[int, frozenset[str]] | None:
    """``(index, tokens that were correct there)`` of the first token of ``tokens`` that no correct solution of
    ``world`` (any sequence of :func:`step_forms`) has after the same prefix; ``None`` when every token fits one (a
    correct completion, or a prefix of one)."""
    steps = step_forms(operands, world)
    alive = {(0, f, 0) for f in range(len(steps[0]))}  # (step, form, offset): where a correct solution may be
    for i, tok in enumerate(tokens):
        allowed = frozenset(steps[s][f][o] for s, f, o in alive)
        if tok not in allowed:
            return i, allowed
        moved = set()
        for s, f, o in alive:
            if steps[s][f][o] != tok:
                continue
            if o + 1 < len(steps[s][f]):
                moved.add((s, f, o + 1))
            elif s + 1 < len(steps):  # the step is written: every form of the next one is open
                moved |= {(s + 1, g, 0) for g in range(len(steps[s + 1]))}
        alive = moved
    return None


def operands_of(prompt: str) -> list[int]:
    """The operands of a lab prompt (``"3+7+5+8="`` -> ``[3, 7, 5, 8]``)."""
    return [int(x) for x in prompt.rstrip("=").split("+")]
