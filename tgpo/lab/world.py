"""The synthetic reasoning world: sums of one-digit numbers, solved step by step, ending in ``\\boxed{}``.

Two solution styles share one tokenizer:

* **S** (the student's family): ``3+7=10;10+5=15;15+8=23;\\boxed{23}``
* **T** (the cross-family teacher's preferred style): ``7 plus 3 is 10. 5 plus 10 is 15. 8 plus 15 is 23. \\boxed{23}``
  (the other operand first, about twice as long). A mixed trace picks S or T independently per step.

World v2 (:data:`tgpo.lab.config.WORLD_V2`, issue 20) adds, opt-in:

* **U** (the style-only teacher family): ``3 and 7 gives 10, 10 and 5 gives 15, 15 and 8 gives 23, \boxed{23}`` — the
  same operands in the same order and the same digits as S; only connectives, separators and step ends differ.
* **long steps**: a step may carry the operands still to add after its sum, ``3+7=10+5+8;10+5=15+8;15+8=23;``
  (in T: ``7 plus 3 is 10+5+8. ``; in U: ``3 and 7 gives 10+5+8, ``). The next step then copies its operand from
  right behind (``10+5``) instead of picking the right one of the prompt's operands (a tiny model miscounts which
  comes next: most of its first errors are a wrong operand). For world v2's student, whose attention reaches 12
  tokens back per layer (:data:`tgpo.lab.config.V2_STUDENT_WINDOW`), a late operand of the prompt is beyond one
  layer's reach, while a long step has carried it to within a few tokens: the long form is worth its length. The
  last step carries nothing, so its long form is its short form.

Prompts are plain text, ``"3+7+5+8="``; the completion follows directly, then EOS. Answers are plain
integer strings.

Held-out rule: a problem whose operand digits, concatenated, form a number divisible by
``WORLD.heldout_divisor`` (7) is held out: it appears only in the eval splits, never in any training data
(pre-training of any model, the RL split, dev sets).

Splits (:func:`make_split`):

=========== ============================================================== ===========
name        problems                                                       held out?
=========== ============================================================== ===========
rl_train    k=4 one-digit sums (what the RL stage trains on)               never
id          k=4 one-digit sums, fixed 600                                  always
hard        k=5 one-digit sums (longer chains), fixed 600                  always
ood         k=4 sums, first operand two-digit (10..19), fixed 600          always
            (never in RL data; rare in students' pre-training, see config)
dev_k<k>    k-operand one-digit sums for early stopping                    never
rl_k<k>     k-operand one-digit sums, i.i.d. (harder RL splits: k=5, 6)    never
=========== ============================================================== ===========

An RL split *spec* (:func:`rl_split`) names one or more of these by their k: ``k4`` is ``rl_train``; ``k4+k5`` mixes
k=4 and k=5 sums in equal parts (the reward-density knob: longer chains leave more groups all-wrong).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

from tgpo.lab.config import TEACHER_MIX, WORLD, WorldConfig
from tgpo.lab.tokenizer import BOXED

EVAL_SPLITS = ("id", "hard", "ood")


# --------------------------------------------------------------------------- problems and solutions
def is_heldout(operands: Sequence[int], world: WorldConfig = WORLD) -> bool:
    return int("".join(str(x) for x in operands)) % world.heldout_divisor == 0


def prompt_of(operands: Sequence[int]) -> str:
    return "+".join(str(x) for x in operands) + "="


def answer_of(operands: Sequence[int]) -> str:
    return str(sum(operands))


#: Step templates by style: ``a`` the running value, ``b`` the operand added, ``c`` their sum, ``r`` the carried
#: operands of a long step (``+5+8``; empty in a short step).
STEP_TEMPLATES = {
    "S": "{a}+{b}={c}{r};",
    "T": "{b} plus {a} is {c}{r}. ",
    "U": "{a} and {b} gives {c}{r}, ",
}
#: What ends a step in some style (a regular expression): S's ``;``, T's ``. ``, U's ``, ``.
STEP_END_PATTERN = r";|\. |, "


def step_text(a: int, b: int, style: str, rest: Sequence[int] = ()) -> str:
    """One step adding ``b`` to the running value ``a``; long when it carries ``rest``, the operands still to add."""
    if style not in STEP_TEMPLATES:
        raise ValueError(f"unknown style {style!r}")
    return STEP_TEMPLATES[style].format(a=a, b=b, c=a + b, r="".join(f"+{x}" for x in rest))


def solution_steps(operands: Sequence[int], styles: str | Sequence[str] = "S",
                   long: bool | Sequence[bool] = False) -> list[str]:
    """:func:`solution`'s parts: one text per step, then the final ``\\boxed{answer}``."""
    n_steps = len(operands) - 1
    if isinstance(styles, str) and len(styles) == 1:
        styles = styles * n_steps
    if isinstance(long, bool):
        long = [long] * n_steps
    if len(styles) != n_steps or len(long) != n_steps:
        raise ValueError("need one style (and one long flag) per step")
    acc, parts = operands[0], []
    for i, (b, st, carry) in enumerate(zip(operands[1:], styles, long)):
        parts.append(step_text(acc, b, st, operands[i + 2 :] if carry else ()))
        acc += b
    return parts + [f"{BOXED}{acc}}}"]


def solution(operands: Sequence[int], styles: str | Sequence[str] = "S", long: bool | Sequence[bool] = False) -> str:
    """The step-by-step solution (no EOS). ``styles``: one style for every step, or one per step; ``long``: whether
    steps carry the operands still to add (world v2), for every step or one flag per step."""
    return "".join(solution_steps(operands, styles, long))


def step_start_offsets(text: str) -> list[int]:
    """Character offsets (in a completion) where an arithmetic step begins (not the final ``\\boxed{``)."""
    end = text.find(BOXED)
    end = len(text) if end < 0 else end
    starts = [0] + [m.end() for m in re.finditer(STEP_END_PATTERN, text)]
    return sorted({s for s in starts if s < end})


def sample_operands(rng: random.Random, k: int, world: WorldConfig = WORLD, ood: bool = False) -> list[int]:
    ops = [rng.randint(world.digit_min, world.digit_max) for _ in range(k)]
    if ood:
        ops[0] = rng.randint(world.ood_first_min, world.ood_first_max)
    return ops


def sample_training_operands(rng: random.Random, k: int, world: WorldConfig = WORLD) -> list[int]:
    """A random k-operand one-digit problem that is not held out."""
    while True:
        ops = sample_operands(rng, k, world)
        if not is_heldout(ops, world):
            return ops


def sample_styles(rng: random.Random, n_steps: int, t_share: float, u_share: float = 0.0) -> str:
    """One style per step: T with probability ``t_share``, else U with ``u_share``, else S (one draw per step)."""
    def one(x: float) -> str:
        return "T" if x < t_share else ("U" if x < t_share + u_share else "S")

    return "".join(one(rng.random()) for _ in range(n_steps))


def sample_pretrain_segments(
    rng: random.Random,
    k_weights: Sequence[tuple[int, float]],
    t_share: float,
    world: WorldConfig = WORLD,
    two_digit_share: float = 0.0,
    two_digit_ks: Sequence[int] = (2, 3, 4),
    u_share: float = 0.0,
    long_share: float = 0.0,
    read_short_share: float = 0.0,
) -> tuple[str, list[tuple[str, bool]]]:
    """(prompt, completion segments) for pre-training, each segment ``(text, trained)``: k from the mix, each step T
    with prob ``t_share`` (else U with prob ``u_share``); with probability ``two_digit_share`` instead a k-operand sum
    (k from ``two_digit_ks``) with a two-digit first operand; with probability ``long_share`` every step long. In a long
    trace, each step but the last is instead, with probability ``read_short_share``, a short S step that is read and
    not trained on (``trained`` False): the model reads short steps, as in the student's rollouts, and learns to
    continue after them, but never to write one. Draws nothing for a share of 0, so a v1 recipe sees the same stream
    as before world v2."""
    if two_digit_share and rng.random() < two_digit_share:
        k = rng.choice(list(two_digit_ks))
        while True:
            ops = sample_operands(rng, k, world, ood=True)
            if not is_heldout(ops, world):
                break
    else:
        ks, ws = zip(*k_weights)
        k = rng.choices(ks, weights=ws)[0]
        ops = sample_training_operands(rng, k, world)
    styles = sample_styles(rng, k - 1, t_share, u_share)
    long = bool(long_share) and rng.random() < long_share
    read_only = [long and bool(read_short_share) and i < k - 2 and rng.random() < read_short_share
                 for i in range(k - 1)]
    styles = "".join("S" if short else st for st, short in zip(styles, read_only))
    parts = solution_steps(ops, styles, [long and not short for short in read_only])
    return prompt_of(ops), [(text, not short) for text, short in zip(parts, read_only + [False])]


def sample_pretrain_example(rng: random.Random, *args, **kwargs) -> tuple[str, str]:
    """(prompt, completion-without-EOS) for pre-training: :func:`sample_pretrain_segments`, joined."""
    prompt, segments = sample_pretrain_segments(rng, *args, **kwargs)
    return prompt, "".join(text for text, _ in segments)


# --------------------------------------------------------------------------- splits
_SPLIT_SPECS = {  # name -> (k attr, ood operand, held_out)
    "rl_train": ("id_k", False, False),
    "id": ("id_k", False, True),
    "hard": ("hard_k", False, True),
    "ood": ("ood_k", True, True),
}


def _split_spec(name: str, world: WorldConfig):
    if name in _SPLIT_SPECS:
        k_attr, ood, held = _SPLIT_SPECS[name]
        return getattr(world, k_attr), ood, held
    m = re.fullmatch(r"(?:dev|rl)_k(\d+)", name)
    if m:
        return int(m.group(1)), False, False
    raise KeyError(f"unknown split {name!r}; known: {sorted(_SPLIT_SPECS)}, dev_k<k> or rl_k<k>")


def make_split(
    name: str, n: int | None = None, seed: int | None = None, world: WorldConfig = WORLD
) -> list[dict]:
    """Rows ``{"id", "problem", "prompt", "answer", "teacher_completion", "solution", "k"}``.

    ``teacher_completion`` is a correct trace in the cross-family teacher's preferred style T (for LUFFY; every step
    long in a world with long steps, as its teachers write); ``solution`` the same in the student's style S, short. Eval splits (id/hard/ood) default to the fixed
    ``world.eval_size`` problems drawn with ``world.eval_seed``: distinct, held-out. ``rl_train`` rows are
    i.i.d. non-held-out problems (default n=1024, seed 0). Same (name, n, seed) -> same rows.
    """
    k, ood, held = _split_spec(name, world)
    is_eval = name in EVAL_SPLITS
    n = n if n is not None else (world.eval_size if is_eval or name.startswith("dev") else 1024)
    seed = seed if seed is not None else (world.eval_seed if is_eval else 0)
    # Distinct streams per split name, stable across Python versions (no hash()).
    rng = random.Random(f"tgpo-lab/{name}/{seed}")
    rows, seen = [], set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 1000 * max(n, 1):
            raise RuntimeError(f"could not draw {n} problems for split {name!r}")
        ops = sample_operands(rng, k, world, ood=ood)
        if is_heldout(ops, world) != held:
            continue
        key = tuple(ops)
        if is_eval or name.startswith("dev"):  # eval/dev problems are distinct
            if key in seen:
                continue
            seen.add(key)
        rows.append(
            {
                "id": f"{name}-{len(rows):05d}",
                "problem": "+".join(str(x) for x in ops),
                "prompt": prompt_of(ops),
                "answer": answer_of(ops),
                "teacher_completion": solution(ops, "T", world.long_steps),
                "solution": solution(ops, "S"),
                "k": k,
            }
        )
    return rows


#: The operand counts an RL split spec may name: the teachers are pre-trained on k=2..6 (config.TEACHER_MIX).
RL_KS = tuple(k for k, _ in TEACHER_MIX)


def parse_rl_split(spec: str) -> tuple[int, ...]:
    """``"k4"`` -> ``(4,)``, ``"k4+k5"`` -> ``(4, 5)``; ValueError naming the spec otherwise."""
    parts = spec.split("+")
    if not all(re.fullmatch(r"k\d+", p) for p in parts) or len(set(parts)) < len(parts):
        raise ValueError(f"RL split {spec!r}: expected k<operands>[+k<operands>...], e.g. k4, k5 or k4+k5")
    ks = tuple(int(p[1:]) for p in parts)
    if not set(ks) <= set(RL_KS):
        raise ValueError(f"RL split {spec!r}: operand counts must be in {list(RL_KS)} (what the teachers were trained on)")
    return ks


def rl_split(spec: str, n: int, seed: int = 0, world: WorldConfig = WORLD) -> list[dict]:
    """``n`` RL prompts of split ``spec`` (:func:`parse_rl_split`): ``k<id_k>`` is ``rl_train`` (what Table 1
    trains on), another k is ``rl_k<k>``; a mix takes equal parts of each (the first parts one more when ``n`` does
    not divide), shuffled with ``seed``."""
    ks = parse_rl_split(spec)
    rows = []
    for i, k in enumerate(ks):
        part = n // len(ks) + (i < n % len(ks))
        rows += make_split("rl_train" if k == world.id_k else f"rl_k{k}", n=part, seed=seed, world=world)
    if len(ks) > 1:
        random.Random(f"tgpo-lab/rl-mix/{spec}/{seed}").shuffle(rows)
    return rows


def as_dataset(name: str, n: int | None = None, seed: int | None = None, world: WorldConfig = WORLD):
    """``datasets.Dataset`` of :func:`make_split` rows (TRL's GRPOTrainer reads the ``prompt`` column)."""
    from datasets import Dataset

    return Dataset.from_list(make_split(name, n=n, seed=seed, world=world))


def rl_dataset(n: int = 1024, seed: int = 0):
    """The RL stage's training prompts (k=4, never held out)."""
    return as_dataset("rl_train", n=n, seed=seed)


#: The columns ``tgpo train`` reads from a lab JSONL (tgpo.data): the prompt, the gold answer, a teacher trace (LUFFY).
TRAIN_COLUMNS = ("prompt", "answer", "teacher_completion")


def write_jsonl(path, name: str = "rl_train", n: int | None = None, seed: int | None = None,
                world: WorldConfig = WORLD) -> int:
    """Write split ``name``'s rows (:func:`make_split`) as JSONL with :data:`TRAIN_COLUMNS`, the file a run
    config's ``dataset.path`` reads; returns the number of rows."""
    return write_rows(path, make_split(name, n=n, seed=seed, world=world))


def write_rows(path, rows: Sequence[dict]) -> int:
    """Write split rows (:func:`make_split`, :func:`rl_split`) as JSONL with :data:`TRAIN_COLUMNS`."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({k: row[k] for k in TRAIN_COLUMNS}) + "\n")
    return len(rows)


# --------------------------------------------------------------------------- grading
def is_correct(completion: str, answer: str) -> bool:
    """The project's one grader, ``tgpo.grading.math_correct`` (the lab's reward and metric, like the paper's)."""
    from tgpo.grading import math_correct

    return bool(math_correct(completion, answer))
