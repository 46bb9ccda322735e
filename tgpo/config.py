"""``TGPOConfig``: TRL's ``GRPOConfig`` plus the fields that choose and tune a method (docs/method.md §2–3)."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from functools import cache

from trl import GRPOConfig

from .objectives import LUFFY_SHAPING_GAMMA, METHODS, canonical_method
from .teacher import AUTO

#: TRL ``loss_type`` values whose per-token surrogate is the paper's clipped one (docs/method.md §1); the others (cispo, sapo, luspo, vespo)
#: change the surrogate itself and are refused rather than silently replaced.
SUPPORTED_LOSS_TYPES = ("dapo", "dr_grpo", "grpo", "bnpo")
REWARDS = ("boxed", "authors_v3")
KL_ESTIMATORS = ("k1", "k2", "k3")

@dataclass(frozen=True)
class Bounds:
    """The range of a numeric ``TGPOConfig`` field, declared beside it (``metadata["bounds"]``): ``None`` is
    unbounded on that side. ``TGPOConfig.__post_init__`` checks every field's value with one message naming it."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True

    def violation(self, value: float) -> str | None:
        """What is wrong with ``value`` (``"must be > 0"``), or None when it lies in the range."""
        too_low = self.low is not None and (value < self.low if self.low_inclusive else value <= self.low)
        too_high = self.high is not None and value > self.high
        if not (too_low or too_high):
            return None
        lo = "" if self.low is None else (f">= {self.low}" if self.low_inclusive else f"> {self.low}")
        hi = "" if self.high is None else f"<= {self.high}"
        return "must be " + " and ".join(p for p in (lo, hi) if p)


def bounded(default, help: str, low=None, high=None, *, low_inclusive: bool = True):
    """A numeric field of ours with its range (see :class:`Bounds`)."""
    return field(default=default, metadata={"help": help, "bounds": Bounds(low, high, low_inclusive)})


def inherited(name: str, low=None, high=None, *, low_inclusive: bool = True, choices: tuple[str, ...] = ()):
    """TRL's ``GRPOConfig`` field ``name``, unchanged (its default and help are read from TRL), with the range (or the
    choices) the losses need declared beside it."""
    parent = GRPOConfig.__dataclass_fields__[name]
    if parent.default is dataclasses.MISSING:
        raise TypeError(f"GRPOConfig.{name} has no plain default to inherit")
    rule = {"one_of": choices} if choices else {"bounds": Bounds(low, high, low_inclusive)}
    return field(default=parent.default, metadata={**parent.metadata, **rule})


def field_bounds(cls=None) -> dict[str, Bounds]:
    """``{field: Bounds}`` of every ranged field of ``TGPOConfig`` (or ``cls``)."""
    return {f.name: f.metadata["bounds"] for f in dataclasses.fields(cls or TGPOConfig) if "bounds" in f.metadata}


@cache
def numeric_fields(cls) -> frozenset[str]:
    """The fields of dataclass ``cls`` whose declared type is a number (``int``, ``float``, or an optional one)."""
    hints = typing.get_type_hints(cls)
    numeric = set()
    for f in dataclasses.fields(cls):
        kinds = [t for t in (typing.get_args(hints[f.name]) or (hints[f.name],)) if t is not type(None)]
        if kinds and all(t in (int, float) for t in kinds):
            numeric.add(f.name)
    return frozenset(numeric)


@dataclass
class TGPOConfig(GRPOConfig):
    """Every ``GRPOConfig`` field, plus:

    * ``method`` — a name in :data:`tgpo.objectives.METHODS` (``tgpo`` is TGPO-Reg; ``kdrl_authors`` is the
      authors' sign-flipped k1 variant, kept only to reproduce their KDRL row; the deprecated ``kdrl_reference``
      still means it).
    * ``guidance_weight``, ``guidance_decay``, ``guidance_min`` — the TGPO schedule
      ``lambda_k = max(l0 - (k-1)*delta, min)``; unset, the method's own defaults (TGPO-Reg 2e-3/1e-5, TGPO-Adv
      2e-2/1e-4, docs/method.md §2).
    * ``kdrl_beta``, ``kdrl_estimator`` — KDRL's reverse-KL weight and estimator (``k1 | k2 | k3``).
    * ``luffy_shaping_gamma`` — LUFFY's policy shaping ``f(p) = p / (p + gamma)`` (docs/method.md §2).
    * ``entropy_coef`` — TRL's entropy bonus, every method; TRL's default 0.0 (the paper's 0.001 is set by the
      presets, the paper configs and the lab configs, docs/method.md §7);
      ``entropy_micro_batches`` — a factor on it, the number of micro-batches whose entropy means the authors sum
      (docs/method.md §3; 1, the default, is the suite's token mean).
    * ``reward`` — ``boxed`` (the last ``\\boxed{}`` after any think block, Math-Verify) or ``authors_v3`` (the
      authors' training reward: a ``</think>`` is required, then Math-Verify on the text after it; docs/method.md §3).
    * ``teacher_temperature`` — the teacher's log-probs ``lp_T`` are taken at this temperature; unset, the rollout
      ``temperature``, as the authors do (the argmax does not depend on it).
    * ``teacher_chunk_size`` / ``teacher_chunk_tokens`` — rows per teacher forward and positions per pass of its
      output head: only ``teacher_chunk_tokens x V`` logits exist at once (``None``: the whole batch / sequence);
      ``"auto"`` (the default) chooses both when the teacher loads, from the device's free memory and
      :func:`tgpo.teacher.teacher_pass_peak_bytes` (:func:`tgpo.teacher.choose_teacher_chunks`: no chunks when the
      whole pass fits, as on a CPU at the lab's size); ``tgpo train --dry-run`` prints the choice and why.
    * ``teacher_server_url`` — score rollouts with a teacher served by ``vllm serve`` at this URL instead of a local
      model (``teacher_model`` then only names the teacher's tokenizer for the vocabulary check);
      ``teacher_server_timeout`` (seconds to wait for it at start-up), ``teacher_server_top_logprobs`` (top-k asked
      per position; > 1 lets the argmax skip ids the student cannot emit) and ``teacher_server_chunk_size``
      (sequences per request, sent concurrently).
    * ``dr_grpo_row_mean`` — with ``loss_type="dr_grpo"``: also divide by the number of rows (TRL's behaviour,
      the default) or not (the authors' ``loss_remove_token_mean``: token sum / padded length).
    * ``log_guidance_share`` — log ``guidance/grad_share``, the ratio ``||lambda grad G|| / ||grad PG||`` measured on
      the student's final hidden states (a proxy for the shared parameters: it costs two backward passes through
      the output head only), at every ``guidance_share_every``-th optimizer step (1, 1+k, ...; the default 10 keeps
      its cost under 1% of the training time); the steps between have no value.
    * ``agreement_token_classes`` — ``{class: regex}``; teacher–student argmax agreement is also logged per class of
      the sampled token (``teacher/argmax_agreement/<class>``), e.g. the lab's content digits vs style tokens.

    Inherited TRL fields the losses honour: ``scale_rewards`` (``group`` | ``batch`` | ``none``), ``loss_type``
    (``dapo`` token mean, ``dr_grpo``, ``grpo``, ``bnpo``; unset: the method's
    ``Method.aggregation``: ``dapo``, except LUFFY's token sum over the padded length), ``epsilon``/``epsilon_high``/``delta`` (clipping),
    ``vllm_importance_sampling_correction`` (the vLLM sampler's importance weights multiply the policy-gradient
    term), ``num_iterations``, ``mask_truncated_completions`` and ``reward_weights``. Fields that would change the
    loss in a way these methods do not implement are refused when they differ from TRL's neutral value:
    ``beta`` (KDRL's KL goes to the teacher, not to a reference), ``importance_sampling_level="sequence"``,
    ``top_entropy_quantile < 1``, ``off_policy_mask_threshold``, ``use_adaptive_entropy``,
    ``multi_objective_aggregation="normalize_then_sum"`` and the loss types cispo, sapo, luspo and vespo.

    The guidance schedule counts *training steps* (rollout batches), as the authors' verl loop does: the optimizer
    updates of one rollout batch share one ``lambda_k`` (see :meth:`rollout_step`). ``steps_per_generation`` need not
    be a multiple of ``gradient_accumulation_steps`` (as in TRL).

    Checked in one place, ``__post_init__``, from what is declared beside each field: numeric fields are
    type-checked from their declared types, ranged ones (``metadata["bounds"]``, see :class:`Bounds`) range-checked,
    and fields with ``metadata["one_of"]`` checked against them (TRL's fields re-declared with :func:`inherited`).
    """

    method: str = field(default="tgpo", metadata={"help": f"Training method, one of {', '.join(METHODS)}."})
    guidance_weight: float | None = bounded(None, "TGPO: initial guidance weight lambda_0 (unset: the method's default).", 0.0)
    guidance_decay: float | None = bounded(None, "TGPO: decrease of lambda per training step (unset: the method's default).", 0.0)
    guidance_min: float = bounded(0.0, "TGPO: floor of the guidance weight.", 0.0)
    kdrl_beta: float = bounded(2e-3, "KDRL: weight of the reverse KL to the teacher.", 0.0)
    kdrl_estimator: str = field(default="k2", metadata={"help": "KDRL: KL estimator, k1, k2 or k3.",
                                                         "one_of": KL_ESTIMATORS})
    luffy_shaping_gamma: float = bounded(LUFFY_SHAPING_GAMMA, "LUFFY: policy shaping f(p) = p / (p + gamma) on the "
                                         "teacher-trace rows.", 0.0, low_inclusive=False)
    entropy_coef: float = inherited("entropy_coef", 0.0)  # TRL's default 0.0; the paper's 0.001 comes from the presets
    entropy_micro_batches: float = bounded(
        1.0, "Factor on the entropy bonus: the authors' number of micro-batches whose entropy token means they sum "
             "(docs/method.md §3); 1: the suite's token mean.", 0.0, low_inclusive=False)
    reward: str = field(default="boxed", metadata={"help": f"Training reward, one of {', '.join(REWARDS)}.",
                                                   "one_of": REWARDS})
    teacher_temperature: float | None = bounded(
        None, "Temperature of the teacher's log-probs (unset: the rollout temperature).", 0.0, low_inclusive=False)
    teacher_chunk_size: int | str | None = field(
        default=AUTO, metadata={"help": "Rows per teacher forward; None runs the whole batch at once; 'auto' (default): "
                                        "chosen from the device's memory (tgpo.teacher.choose_teacher_chunks)."}
    )
    teacher_chunk_tokens: int | str | None = field(
        default=AUTO,
        metadata={"help": "Positions per pass of the teacher's output head; None: all at once; 'auto' (default): "
                          "chosen with teacher_chunk_size."},
    )
    loss_type: str | None = field(
        default=None,
        metadata={"help": "TRL's aggregation of token losses: dapo, dr_grpo, grpo or bnpo (unset: the method's "
                          "default, tgpo.objectives.Method.aggregation: dapo; LUFFY: the authors' token sum over the "
                          "padded length).",
                  "one_of": SUPPORTED_LOSS_TYPES, "why": "these methods' surrogate is the clipped one"},
    )
    dr_grpo_row_mean: bool | None = field(
        default=None,
        metadata={"help": "loss_type=dr_grpo: divide by rows too (TRL, default) or not (the authors' padded-length sum)."},
    )
    log_guidance_share: bool = field(
        default=False, metadata={"help": "Log the guidance term's gradient share at the final hidden states."}
    )
    guidance_share_every: int = bounded(10, "log_guidance_share: measure the share at optimizer steps 1, 1+k, 1+2k, ...", 1)
    agreement_token_classes: dict | None = field(
        default=None, metadata={"help": "{class: regex}: log teacher-student argmax agreement per sampled-token class."}
    )

    teacher_server_url: str | None = field(
        default=None, metadata={"help": "URL of a `vllm serve` teacher (e.g. http://host:8001); None: local teacher."}
    )
    teacher_server_timeout: float = bounded(
        240.0, "Seconds to wait for the served teacher to answer /health at start-up.", 0.0, low_inclusive=False)
    teacher_server_top_logprobs: int = bounded(
        1, "Top-k log-probs asked per position from the served teacher (argmax = top-1).", 1)
    teacher_server_chunk_size: int = bounded(0, "Sequences per request to the served teacher (0: the whole batch in one).", 0)

    # Inherited TRL fields the losses read: TRL's defaults and help, with their ranges.
    # above 1 an update blows the weights up (a typo, not a setting)
    learning_rate: float = inherited("learning_rate", 0.0, 1.0, low_inclusive=False)
    temperature: float = inherited("temperature", 0.0, low_inclusive=False)
    epsilon: float = inherited("epsilon", 0.0, 1.0, low_inclusive=False)
    epsilon_high: float | None = inherited("epsilon_high", 0.0, low_inclusive=False)
    delta: float | None = inherited("delta", 1.0, low_inclusive=False)
    max_grad_norm: float = inherited("max_grad_norm", 0.0)
    max_completion_length: int | None = inherited("max_completion_length", 1)
    num_generations: int | None = inherited("num_generations", 2)
    per_device_train_batch_size: int = inherited("per_device_train_batch_size", 1)
    gradient_accumulation_steps: int = inherited("gradient_accumulation_steps", 1)
    num_iterations: int = inherited("num_iterations", 1)
    top_p: float = inherited("top_p", 0.0, 1.0, low_inclusive=False)
    scale_rewards: str = inherited("scale_rewards", choices=("group", "batch", "none"))  # checked after TRL maps bools

    def __post_init__(self):
        self.method = canonical_method(self.method)
        if self.method not in METHODS:
            raise ValueError(f"TGPOConfig.method={self.method!r}; expected one of {', '.join(METHODS)}")
        spec = METHODS[self.method]
        for name, value in spec.defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.guidance_weight is None:  # methods without a schedule: the fields are unused
            self.guidance_weight = 0.0
        if self.guidance_decay is None:
            self.guidance_decay = 0.0
        self.loss_type, self.dr_grpo_row_mean = spec.resolve_aggregation(self.loss_type, self.dr_grpo_row_mean)
        self._check_types_and_ranges()
        super().__post_init__()
        self._check_choices()
        self._refuse_unhonoured_trl_fields()
        if self.teacher_temperature is None:
            self.teacher_temperature = self.temperature

    # --------------------------------------------------------------------------------------- checks
    def _check_types_and_ranges(self) -> None:
        bounds = field_bounds(type(self))
        for name in sorted(numeric_fields(type(self))):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"TGPOConfig.{name}={value!r}: expected a number, got {type(value).__name__}")
            if name not in bounds:
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"TGPOConfig.{name}={value!r}: expected a finite number")
            problem = bounds[name].violation(value)
            if problem:
                raise ValueError(f"TGPOConfig.{name}={value!r}: {problem}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"TGPOConfig.max_steps={self.max_steps!r}: must be >= 1 (or -1: train num_train_epochs)")
        if self.guidance_min > self.guidance_weight:
            raise ValueError(
                f"TGPOConfig.guidance_min={self.guidance_min!r} is above guidance_weight={self.guidance_weight!r}: the "
                "schedule would never decay"
            )

    def _check_choices(self) -> None:
        for name in ("teacher_chunk_size", "teacher_chunk_tokens"):
            value = getattr(self, name)
            if value is not None and value != AUTO and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"TGPOConfig.{name}={value!r}: expected a whole number >= 1, None or 'auto'")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("one_of")
            value = getattr(self, f.name)
            if choices and value not in choices:
                why = f" is not supported: {f.metadata['why']}" if f.metadata.get("why") else ""
                raise ValueError(f"TGPOConfig.{f.name}={value!r}{why}; expected one of {', '.join(choices)}")

    def _refuse_unhonoured_trl_fields(self) -> None:
        refused = {
            "beta": (self.beta != 0.0, "no reference-model KL in these methods; use beta=0.0 (KDRL's KL to the "
                                       "teacher: method='kdrl' with kdrl_beta)"),
            "use_adaptive_entropy": (self.use_adaptive_entropy, "use a fixed entropy_coef"),
            "importance_sampling_level": (self.importance_sampling_level != "token",
                                          "the losses use token-level ratios; use importance_sampling_level='token'"),
            "top_entropy_quantile": (self.top_entropy_quantile < 1.0,
                                     "the losses keep every token; use top_entropy_quantile=1.0"),
            "off_policy_mask_threshold": (self.off_policy_mask_threshold is not None,
                                          "the losses do not mask off-policy sequences; use "
                                          "off_policy_mask_threshold=None"),
            "multi_objective_aggregation": (self.multi_objective_aggregation != "sum_then_normalize",
                                            "advantages come from the summed rewards; use "
                                            "multi_objective_aggregation='sum_then_normalize' (reward_weights "
                                            "weight the sum)"),
        }
        for name, (bad, why) in refused.items():
            if bad:
                raise ValueError(f"TGPOConfig.{name}={getattr(self, name)!r} is not supported: {why}")

    # --------------------------------------------------------------------------------- conversion
    @classmethod
    def from_grpo_config(cls, config: GRPOConfig, **overrides) -> TGPOConfig:
        """A ``TGPOConfig`` with every field of TRL's ``config`` (a ``GRPOConfig``) as the user set it, plus
        ``overrides`` (e.g. ``method``); the suite's own fields keep their defaults.

        ``generation_batch_size`` is derived again from ``steps_per_generation`` (``GRPOConfig.__post_init__`` has
        already set both, which TRL itself refuses as input).
        """
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(GRPOConfig)
                  if f.init and hasattr(config, f.name)}
        values["generation_batch_size"] = None
        return cls(**{**values, **overrides})

    # ------------------------------------------------------------------------------------ derived
    def rollout_step(self, step: int) -> int:
        """The training (rollout) step ``k`` of optimizer step ``step`` (both 1-based): the rollout batch that the
        update's first micro-batch comes from. With ``steps_per_generation x num_iterations`` a multiple of
        ``gradient_accumulation_steps`` every update reads one rollout batch; otherwise an update may straddle two
        and takes the first one's ``k`` (as TRL's own loop mixes them)."""
        micro_per_rollout = self.steps_per_generation * self.num_iterations
        return (step - 1) * self.gradient_accumulation_steps // micro_per_rollout + 1

    @property
    def updates_per_generation(self) -> int:
        """Optimizer updates per rollout (generation) batch: the paper's PPO mini-batches per training step,
        times TRL's ``num_iterations`` (each rollout batch reused that many times)."""
        return max(1, self.steps_per_generation * self.num_iterations // self.gradient_accumulation_steps)

    @property
    def needs_teacher(self) -> bool:
        """Whether the method ever reads a teacher pass (a scheduled method only if its weight is ever > 0)."""
        spec = METHODS[self.method]
        if not spec.teacher:
            return False
        if spec.scheduled:
            return max(self.guidance_weight, self.guidance_min) > 0
        return True


@dataclass
class PlannedConfig(TGPOConfig):
    """A ``TGPOConfig`` validated as it would be on ``planned_processes`` data-parallel processes, for the dry run
    (never trained with). TRL's ``GRPOConfig.__post_init__`` derives the generation batch and checks its
    divisibility from ``world_size``; this override is what lets a machine without those processes ask TRL."""

    planned_processes: int = 1

    @property
    def world_size(self) -> int:
        return self.planned_processes
