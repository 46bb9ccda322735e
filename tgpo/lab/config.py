"""Every setting of the CPU divergence lab, in one place.

* :data:`WORLD` — the synthetic reasoning world (problem distribution, held-out rule, eval splits).
* :class:`ArchConfig` / :class:`PretrainConfig` / :class:`LabModelConfig` — one tiny model and how it is
  pre-trained (teacher-forced cross-entropy on solutions; no RL here).
* :data:`MODELS` — the registry of built models by name; :func:`get_model_config` also understands
  ``teacher_t<share>`` (e.g. ``teacher_t0.3``) so a divergence sweep can build teachers on demand.
* :data:`WORLD_V2` / :data:`WORLDS` — the second generation of the world (issue 20): the same problems and splits,
  with a style-only teacher family (style U) and long steps that carry the operands still to add
  (:mod:`tgpo.lab.world`); its models (``v2_*``, :data:`V2_MODELS`; ``v2_teacher_[tu]<share>`` on demand) are opt-in
  and leave every v1 hash unchanged.

A model's *config hash* (:func:`config_hash`) covers its architecture, its pre-training recipe, the world
and :data:`LAB_VERSION`; ``tgpo lab build`` skips a model whose stored hash matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field

#: Bump when the world's text formats or the tokenizer change in a way a config does not show.
LAB_VERSION = "lab-v1"
#: Hashed into the models of a later world generation (:data:`WORLDS`): bump when that world's text formats (its
#: styles, its long steps: tgpo.lab.world.STEP_TEMPLATES) change.
WORLD_VERSIONS = {"v2": "lab-v2.0"}


@dataclass(frozen=True)
class WorldConfig:
    """Sums of one-digit numbers, solved step by step and ending in ``\\boxed{answer}``."""

    digit_min: int = 1
    digit_max: int = 9
    #: A problem whose operand digits, concatenated, form a number divisible by this is *held out*:
    #: it may appear in the eval splits (id/hard/ood) and never in any training data.
    heldout_divisor: int = 7
    id_k: int = 4  # the RL split and the in-distribution eval split: sums of 4 one-digit numbers
    hard_k: int = 5  # harder: longer chains
    #: Out of distribution: k=4 sums whose *first* operand is two-digit (ood_first_min..ood_first_max).
    #: Out of the RL distribution (rl_train is all one-digit) and rare in pre-training: students see this
    #: format in 10% of pre-training examples (k=2,3,4; PretrainConfig.two_digit_share) — like an LLM's OOD
    #: benchmark, known from pre-training but never trained on by RL. Teachers never see it.
    #: Measured and rejected (student greedy 0.00-0.035, uninformative): a zero operand anywhere; a two-digit
    #: operand anywhere with no two-digit exposure in pre-training; two-digit first operands seen only in
    #: k=2 or k=2,3 pre-training sums (the tiny student does not compose them into k=4 chains).
    ood_k: int = 4
    ood_first_min: int = 10
    ood_first_max: int = 19
    #: Problems per eval split (id/hard/ood): 600 of about 940 (id), 8,400 (hard) and 1,040 (ood) distinct held-out
    #: problems. Draws are sequential, so the first 200 are the problems of the earlier 200-problem splits.
    eval_size: int = 600
    eval_seed: int = 20260513
    #: Generation budget of the eval tasks: the longest solution in either style (k=6 T-style ~ 110) fits.
    max_gen_toks: int = 128
    max_positions: int = 256
    #: The step styles a correct solution may use (tgpo.lab.world.step_text): S (student), T (content-moving:
    #: other operand first), U (style-only: same operands in the same order, other connectives and separators).
    styles: tuple[str, ...] = ("S", "T")
    #: Whether a step may be written long, carrying the operands still to add (``3+7+5+8=10+5+8;``).
    long_steps: bool = False
    #: RL completion cap of this world (None: the recipe's max_completion_length): room for long steps and rambling.
    completion_cap: int | None = None


WORLD = WorldConfig()
#: World v2: the same problems, splits and held-out rule; solutions may also use style U and long steps, and a
#: completion may run to 96 tokens (the longest correct k=6 solution, all steps long, has about 85).
WORLD_V2 = WorldConfig(styles=("S", "T", "U"), long_steps=True, completion_cap=96)
WORLDS = {"v1": WORLD, "v2": WORLD_V2}


@dataclass(frozen=True)
class ArchConfig:
    """A tiny decoder (tied embeddings, float32): Llama-config, or Mistral-config when it has a sliding window."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 256
    #: Each layer attends only this many tokens back (None: the whole context). World v2's student has one, so
    #: retrieving an operand from far back in the prompt takes both layers, while a long step's carried operands sit
    #: right behind where they are needed (tgpo.lab.world).
    sliding_window: int | None = None


@dataclass(frozen=True)
class PretrainConfig:
    #: k (number of operands) -> weight, for the one-digit sums the model is pre-trained on.
    k_weights: tuple[tuple[int, float], ...] = ((2, 0.45), (3, 0.45), (4, 0.1))
    #: The divergence knob: probability that a solution step is written in the teacher style T
    #: (``b plus a is c.``) instead of the student style S (``a+b=c;``). 0.0 = in-family, 0.9 = cross-family.
    t_share: float = 0.0
    #: Share of pre-training examples that are sums (k drawn uniformly from `two_digit_ks`) with a two-digit first
    #: operand (world.ood_first_min..ood_first_max), e.g. ``13+5+2=`` -> ``13+5=18;18+2=20;\\boxed{20}``.
    two_digit_share: float = 0.0
    two_digit_ks: tuple[int, ...] = (2, 3, 4)
    #: World v2's kind-of-divergence knob: probability that a step is in the style-only style U (``a and b gives c, ``;
    #: drawn with t_share: T with probability t_share, else U with probability u_share, else S).
    u_share: float = 0.0
    #: World v2's length knob: probability that a trace writes every step long (carrying the operands still to add).
    long_share: float = 0.0
    #: World v2's reading knob: in a long trace, probability that a step (not the last) is a short S step the model
    #: reads but is not trained on (tgpo.lab.world.sample_pretrain_segments): a teacher that reads the student's short
    #: steps and still only writes long ones.
    read_short_share: float = 0.0
    label_smoothing: float = 0.0  # 0.1 for teachers: bounded confidence keeps reverse-KL rewards finite
    steps: int = 500  # maximum number of optimizer steps
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio at `steps`
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    #: Early stop (teachers): every `eval_every` steps, greedy accuracy on the non-held-out dev sets of these
    #: k; stop once all reach `stop_at`. 0 disables.
    eval_every: int = 0
    stop_ks: tuple[int, ...] = ()
    stop_at: float = 0.97
    dev_size: int = 200


@dataclass(frozen=True)
class LabModelConfig:
    name: str
    role: str  # "student" | "teacher" | "test"
    arch: ArchConfig = field(default_factory=ArchConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    seed: int = 1234
    description: str = ""
    world: str = "v1"  # a key of WORLDS: the grammar its outputs are graded and labelled by

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


STUDENT = "student"
SMALL_STUDENT = "student_small"
TEACHER_IN = "teacher_in"
TEACHER_CROSS = "teacher_cross"
TINY_TEST = "tiny_test"

#: Pre-training mix of the students: mostly shorter chains than the RL/id split (k=4), a little k=4 and k=5
#: so that the student starts weak but learnable on k=4 and can partly solve the hard split (k=5), plus
#: STUDENT_TWO_DIGIT_SHARE of sums with a two-digit first operand (the ood format).
STUDENT_MIX = ((2, 0.4), (3, 0.4), (4, 0.1), (5, 0.1))
TEACHER_MIX = ((2, 0.2), (3, 0.2), (4, 0.2), (5, 0.2), (6, 0.2))

STUDENT_TWO_DIGIT_SHARE = 0.15
#: Students sit just before a sharp transition (measured, same recipe: student 500 steps -> 0.425 greedy on
#: id, 550 -> 0.83, 700 -> 0.96); the step counts were chosen so that each starts near 0.4 greedy on id.
_STUDENT_PRETRAIN = PretrainConfig(k_weights=STUDENT_MIX, two_digit_share=STUDENT_TWO_DIGIT_SHARE, steps=500)
_SMALL_STUDENT_PRETRAIN = dataclasses.replace(_STUDENT_PRETRAIN, steps=600)
_TEACHER_ARCH = ArchConfig(hidden_size=96, num_hidden_layers=3, num_attention_heads=4, intermediate_size=384)


def teacher_config(t_share: float, name: str | None = None, u_share: float = 0.0) -> LabModelConfig:
    """A teacher whose solution steps are in style T with probability ``t_share`` (the divergence knob: content-moving),
    or in the style-only style U with probability ``u_share`` (one of the two, not both)."""
    for knob, share in (("t_share", t_share), ("u_share", u_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{knob} must be in [0, 1], got {share}")
    if t_share and u_share:
        raise ValueError("a teacher moves content (t_share) or style only (u_share), not both")
    kind = f"U-style (style-only) steps {u_share:g}" if u_share else f"T-style steps {t_share:g}"
    return LabModelConfig(
        name=name or (f"teacher_u{u_share:g}" if u_share else f"teacher_t{t_share:g}"),
        role="teacher",
        arch=_TEACHER_ARCH,
        pretrain=PretrainConfig(
            k_weights=TEACHER_MIX,
            t_share=float(t_share),
            u_share=float(u_share),
            label_smoothing=0.1,
            steps=4000,
            eval_every=250,
            stop_ks=(4, 5),
            stop_at=0.97,
        ),
        seed=4321,
        description=f"teacher, k=2..6, share of {kind}, label smoothing 0.1",
    )


MODELS: dict[str, LabModelConfig] = {
    STUDENT: LabModelConfig(
        name=STUDENT,
        role="student",
        arch=ArchConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
        pretrain=_STUDENT_PRETRAIN,
        description="student (hidden 64, 2 layers), S style, pre-trained mostly on shorter chains",
    ),
    SMALL_STUDENT: LabModelConfig(
        name=SMALL_STUDENT,
        role="student",
        arch=ArchConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=192),
        pretrain=_SMALL_STUDENT_PRETRAIN,
        description="smaller student (hidden 48, 2 layers), same data and tokenizer as the student",
    ),
    TEACHER_IN: teacher_config(0.0, name=TEACHER_IN),
    TEACHER_CROSS: teacher_config(0.9, name=TEACHER_CROSS),
    TINY_TEST: LabModelConfig(
        name=TINY_TEST,
        role="test",
        arch=ArchConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
        pretrain=PretrainConfig(steps=5, batch_size=8, warmup_steps=1),
        description="throw-away model for tests (not built by default)",
    ),
}

#: Built by ``tgpo lab build`` without ``--only``.
DEFAULT_MODELS = (STUDENT, SMALL_STUDENT, TEACHER_IN, TEACHER_CROSS)

#: The style-only teacher family (issue 20: kind of divergence), for the shipped student: share of U-style steps,
#: built as ``teacher_u<share>`` (any share in [0, 1] builds on demand, like ``teacher_t<share>``).
STYLE_ONLY_LEVELS = (0.5, 0.9)
MODELS.update({f"teacher_u{u:g}": teacher_config(0.0, u_share=u) for u in STYLE_ONLY_LEVELS})

# --------------------------------------------------------------------------- world v2 (issue 20)
V2 = "v2_"
V2_STUDENT = "v2_student"
V2_TEACHER_IN = "v2_teacher_in"
V2_TEACHER_CROSS = "v2_teacher_cross"
#: Teachers that read the student's short steps (issue 20, item 5): v2_teacher_in's and v2_teacher_cross's recipes with
#: V2_READ_SHORT_SHARE of their steps short, in S, and untrained. The shipped v2 teachers never saw a short step: at
#: the first error of the student's wrong rollouts their argmax was correct in 18-68% of them (results/lab/README.md).
V2_TEACHER_IN_READ = "v2_teacher_in_read"
V2_TEACHER_CROSS_READ = "v2_teacher_cross_read"
V2_READ_SHORT_SHARE = 0.5
#: The v2 student's share of long traces: rare in pre-training (teachers write every step long).
V2_STUDENT_LONG_SHARE = 0.12
#: The v2 student's attention window (ArchConfig.sliding_window) and pre-training steps. Issue 20's prototype check: the
#: base student must be >= 15 points more accurate on rollouts where it writes the long form. Each design below: the
#: v2 student's recipe pre-trained once, then 256 RL-split prompts x 8 rollouts at T=0.6, cap 96
#: (repro.regime.length_rows: accuracy of rollouts with a long step minus those without, points [95% interval
#: clustered by prompt]; the share of rollouts with a long step):
#:   full attention, 500 steps, long share 12% (carried operands, 3+7=10+5+8;)  k4: -28.8 [-43.4, -14.2], 1.7% long
#:   full attention, 500 steps, long share 30%                                  k4:  +3.6 [-2.8, 10.0], 13.4% long
#:   window 16, 500 steps, 12%         k4: -0.3 [-9.4, 8.9], 3.9% long (greedy id 0.17)
#:   window 12, 500 steps, 12%         k4: +4.8 [-4.0, 13.5], 2.9% long (greedy id 0.085)
#:   window 10, 1500 steps, 12%        k4: +55.5 [41.0, 70.1], 2.7% long (greedy id 0.015; k5: +11.9 [2.7, 21.0])
#:   window 12, 1500 steps, 12%        k4: +39.4 [32.7, 46.2], 3.0% long (greedy id 0.805; k5: +31.5 [16.8, 46.2],
#:                                     2.3% long)  <- chosen: passes on k4 and k5, and the short form stays learnable
#: Earlier designs, all with full attention and the 500-step recipe unless said (long form; its share of traces):
#:   the prompt's pair first, 7+5:10+5=15;                               12%: -59.4 [-72.5, -46.3], 2.4% long
#:   the prompt's prefix first, 3+7+5:10+5=15;                           12%: -23.7 [-37.9, -9.6], 2.4% long
#:   the whole remaining sum on both sides, 3+7+5+8=10+5+8;              12%: -67.5 [-73.9, -61.2], 3.8% long
#:   the operand's index in the prompt first, 3:10+5=15;                 12%: -16.5 [-30.7, -2.3], 2.5% long
#:     (k=5: -25.3 [-34.5, -16.2])
#:   an explicit carry, units first, 15+8=13+10=23;                      12%: -18.5 [-30.2, -6.7], 3.2% long
#:     (k=5: -15.0 [-21.5, -8.5])
#:   carried operands, 50% of traces for 300 steps, then 5%                   -32.8 [-47.3, -18.4], 2.1% long
#:     (k=5: -20.5 [-28.1, -12.8])
#:   carried operands, 50% of k<=3 traces and 12% of k>=4                     -43.9 [-55.2, -32.5], 4.1% long
#:     (k=5: -64.1 [-70.6, -57.5]; long rollouts carry as many operands as a k=3 trace would)
#:   carried operands, 1000 steps, 12%                      k4: 0.0 (every rollout correct); k5: -11.5 [-21.0, -1.9]
#:   carried operands, hidden 96 and 3 layers, 30%          k4: -1.5 [-3.0, 0.1]; k5: -1.0 [-3.3, 1.2]
#: With full attention no long form was resolved as more accurate (most were resolved as less): picking the next
#: operand from the prompt is no harder than copying it from right behind, so a rarely seen form only adds ways to
#: miscopy. A window makes the short form weak because of what the long form supplies: late operands sit beyond one
#: layer's reach, while a long step carries them to within a few tokens.
V2_STUDENT_WINDOW = 12
V2_STUDENT_STEPS = 1500


def v2_teacher_config(t_share: float = 0.0, u_share: float = 0.0, name: str | None = None,
                      read_short_share: float = 0.0) -> LabModelConfig:
    """A world-v2 teacher: :func:`teacher_config`'s, every step it writes long; with ``read_short_share``, it also reads
    short S steps it is not trained to write (:attr:`PretrainConfig.read_short_share`)."""
    base = teacher_config(t_share, u_share=u_share)
    reads = f", reads short S steps ({read_short_share:g} of steps, untrained)" if read_short_share else ""
    return dataclasses.replace(base, name=name or f"{V2}{base.name}", world="v2",
                               pretrain=dataclasses.replace(base.pretrain, long_share=1.0,
                                                            read_short_share=read_short_share),
                               description=base.description.replace("teacher,", "v2 teacher, every step long,", 1)
                               + reads)


V2_MODELS: dict[str, LabModelConfig] = {
    V2_STUDENT: dataclasses.replace(
        MODELS[STUDENT], name=V2_STUDENT, world="v2",
        arch=dataclasses.replace(MODELS[STUDENT].arch, sliding_window=V2_STUDENT_WINDOW),
        pretrain=dataclasses.replace(_STUDENT_PRETRAIN, long_share=V2_STUDENT_LONG_SHARE, steps=V2_STUDENT_STEPS),
        description=f"v2 student: the student's shape with a {V2_STUDENT_WINDOW}-token attention window, "
                    f"{V2_STUDENT_STEPS} steps, {V2_STUDENT_LONG_SHARE:g} of traces with long steps"),
    V2_TEACHER_IN: v2_teacher_config(name=V2_TEACHER_IN),
    V2_TEACHER_CROSS: v2_teacher_config(t_share=0.9, name=V2_TEACHER_CROSS),
    V2_TEACHER_IN_READ: v2_teacher_config(name=V2_TEACHER_IN_READ, read_short_share=V2_READ_SHORT_SHARE),
    V2_TEACHER_CROSS_READ: v2_teacher_config(t_share=0.9, name=V2_TEACHER_CROSS_READ,
                                             read_short_share=V2_READ_SHORT_SHARE),
}
MODELS.update(V2_MODELS)

_TEACHER_RE = re.compile(r"^(v2_)?teacher_([tu])(\d+(?:\.\d+)?)$")


def get_model_config(name: str) -> LabModelConfig:
    if name in MODELS:
        return MODELS[name]
    m = _TEACHER_RE.match(name)
    if m and 0.0 <= float(m.group(3)) <= 1.0:
        shares = {f"{m.group(2)}_share": float(m.group(3))}
        return v2_teacher_config(**shares, name=name) if m.group(1) else teacher_config(**{"t_share": 0.0, **shares},
                                                                                        name=name)
    if m:
        raise KeyError(f"unknown lab model {name!r}: [v2_]teacher_t<share> / [v2_]teacher_u<share> take a share of T- "
                       f"or U-style steps in [0, 1], e.g. teacher_t0.3")
    raise KeyError(f"unknown lab model {name!r}; known: {sorted(MODELS)}, [v2_]teacher_t<share> or "
                   f"[v2_]teacher_u<share> (share in [0, 1])")


def world_of(name: str) -> WorldConfig:
    """The world (:data:`WORLDS`) of a lab model by name; v1 for a name the registry does not know (a folder)."""
    try:
        return WORLDS[get_model_config(name).world]
    except KeyError:
        return WORLD


def grammar_of(student: str, teacher: str) -> WorldConfig:
    """The grammar to grade a student's rollouts by when a teacher reads them: the student's world (its completion cap),
    with style U if either model writes it and long steps if either does (names the registry does not know: v1's)."""
    world, used = world_of(student), []
    for name in (student, teacher):
        try:
            used.append(get_model_config(name).pretrain)
        except KeyError:
            continue
    styles = world.styles + tuple(s for s in ("U",) if s not in world.styles and any(p.u_share for p in used))
    return dataclasses.replace(world, styles=styles, long_steps=world.long_steps or any(p.long_share for p in used))


#: Fields added after lab-v1 models were built, omitted from the hash while unused (the switch at its neutral value),
#: so the stored models' hashes stay valid: pre-training switch -> the fields it brings.
_ADDED_PRETRAIN_FIELDS = {"two_digit_share": ("two_digit_share", "two_digit_ks"), "u_share": ("u_share",),
                          "long_share": ("long_share",), "read_short_share": ("read_short_share",)}

#: The world's fields that change what models are trained on (eval-only fields are not hashed).
_WORLD_TRAINING_FIELDS = ("digit_min", "digit_max", "heldout_divisor", "max_positions")


def config_hash(cfg: LabModelConfig, world: WorldConfig = WORLD) -> str:
    """Hash of what determines the weights (name, description and eval-only world fields excluded)."""
    d = cfg.to_dict()
    d.pop("name")
    d.pop("description")
    if d["world"] == "v1":  # added with world v2: omitted for v1 models (their hashes stay valid)
        d.pop("world")
    w = {k: getattr(world, k) for k in _WORLD_TRAINING_FIELDS}
    if d["pretrain"]["two_digit_share"]:
        w.update(ood_first_min=world.ood_first_min, ood_first_max=world.ood_first_max)
    if d["arch"]["sliding_window"] is None:  # added with world v2's student: omitted while unused (hashes stay valid)
        d["arch"].pop("sliding_window")
    for switch, keys in _ADDED_PRETRAIN_FIELDS.items():
        if not d["pretrain"][switch]:
            for key in keys:
                d["pretrain"].pop(key)
    payload = {"model": d, "world": w, "lab_version": LAB_VERSION}
    if "world" in d:
        payload["world_version"] = WORLD_VERSIONS[d["world"]]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
