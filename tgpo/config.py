"""``TGPOConfig``: TRL's ``GRPOConfig`` plus the fields that choose and tune a method (docs/method.md §2–3)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from trl import GRPOConfig

from .objectives import METHODS
from .teacher import DEFAULT_CHUNK_ROWS, DEFAULT_CHUNK_TOKENS

#: TRL ``loss_type`` values whose per-token surrogate is the paper's clipped one (docs/method.md §1); the others (cispo, sapo, luspo, vespo)
#: change the surrogate itself and are refused rather than silently replaced.
SUPPORTED_LOSS_TYPES = ("dapo", "dr_grpo", "grpo", "bnpo")
REWARDS = ("boxed", "authors_v3")
KL_ESTIMATORS = ("k1", "k2", "k3")

#: Range of each numeric field: ``field -> (low, high, low_inclusive)``; ``None`` = unbounded on that side.
#: Checked in ``__post_init__`` with one message naming the field and the value.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "guidance_weight": (0.0, None, True),
    "guidance_decay": (0.0, None, True),
    "guidance_min": (0.0, None, True),
    "kdrl_beta": (0.0, None, True),
    "entropy_coef": (0.0, None, True),
    "teacher_chunk_size": (1, None, True),
    "teacher_chunk_tokens": (1, None, True),
    "teacher_temperature": (0.0, None, False),
    "teacher_server_timeout": (0.0, None, False),
    "teacher_server_top_logprobs": (1, None, True),
    "teacher_server_chunk_size": (0, None, True),
    # inherited TRL fields the losses read
    "learning_rate": (0.0, 1.0, False),  # above 1 an update blows the weights up (a typo, not a setting)
    "temperature": (0.0, None, False),
    "epsilon": (0.0, 1.0, False),
    "epsilon_high": (0.0, None, False),
    "delta": (1.0, None, False),
    "max_grad_norm": (0.0, None, True),
    "max_completion_length": (1, None, True),
    "num_generations": (2, None, True),
    "per_device_train_batch_size": (1, None, True),
    "gradient_accumulation_steps": (1, None, True),
    "num_iterations": (1, None, True),
    "top_p": (0.0, 1.0, False),
}


def _numeric_field(f: dataclasses.Field) -> bool:
    text = str(f.type)
    return any(t in text for t in ("float", "int")) and "str" not in text and "dict" not in text and "list" not in text


@dataclass
class TGPOConfig(GRPOConfig):
    """Every ``GRPOConfig`` field, plus:

    * ``method`` — a name in :data:`tgpo.objectives.METHODS`: ``grpo | tgpo | tgpo_adv | rkl | kdrl |
      kdrl_reference | luffy`` (``tgpo`` is TGPO-Reg; ``kdrl_reference`` is the authors' sign-flipped k1 variant,
      kept only to reproduce their KDRL row).
    * ``guidance_weight``, ``guidance_decay``, ``guidance_min`` — the TGPO schedule
      ``lambda_k = max(l0 - (k-1)*delta, min)``; unset, the method's own defaults (TGPO-Reg 2e-3/1e-5, TGPO-Adv
      2e-2/1e-4, docs/method.md §2).
    * ``kdrl_beta``, ``kdrl_estimator`` — KDRL's reverse-KL weight and estimator (``k1 | k2 | k3``).
    * ``entropy_coef`` — entropy bonus, every method (TRL's field, default changed to the paper's 0.001).
    * ``reward`` — ``boxed`` (the last ``\\boxed{}`` after any think block, Math-Verify) or ``authors_v3`` (the
      authors' training reward: a ``</think>`` is required, then Math-Verify on the text after it; docs/method.md §3).
    * ``teacher_temperature`` — the teacher's log-probs ``lp_T`` are taken at this temperature; unset, the rollout
      ``temperature``, as the authors do (the argmax does not depend on it).
    * ``teacher_chunk_size`` / ``teacher_chunk_tokens`` — rows per teacher forward and positions per pass of its
      output head: only ``teacher_chunk_tokens x V`` logits exist at once (``None``: the whole batch / sequence);
      the defaults fit an 80 GB GPU beside a 30B teacher at 9,216 positions (:func:`tgpo.teacher.teacher_pass_peak_bytes`).
    * ``teacher_server_url`` — score rollouts with a teacher served by ``vllm serve`` at this URL instead of a local
      model (``teacher_model`` then only names the teacher's tokenizer for the vocabulary check);
      ``teacher_server_timeout`` (seconds to wait for it at start-up), ``teacher_server_top_logprobs`` (top-k asked
      per position; > 1 lets the argmax skip ids the student cannot emit) and ``teacher_server_chunk_size``
      (sequences per request, sent concurrently).
    * ``dr_grpo_row_mean`` — with ``loss_type="dr_grpo"``: also divide by the number of rows (TRL's behaviour,
      the default) or not (the authors' ``loss_remove_token_mean``: token sum / padded length).
    * ``log_guidance_share`` — log ``guidance/grad_share``, the ratio ``||lambda grad G|| / ||grad PG||`` measured on
      the student's final hidden states (a proxy for the shared parameters: it costs two backward passes through
      the output head only).
    * ``agreement_token_classes`` — ``{class: regex}``; teacher–student argmax agreement is also logged per class of
      the sampled token (``teacher/argmax_agreement/<class>``), e.g. the lab's content digits vs style tokens.

    Inherited TRL fields the losses honour: ``scale_rewards`` (``group`` | ``batch`` | ``none``), ``loss_type``
    (``dapo`` token mean, ``dr_grpo``, ``grpo``, ``bnpo``; unset: ``dapo``, except LUFFY, which defaults to the
    authors' token sum over the padded length), ``epsilon``/``epsilon_high``/``delta`` (clipping),
    ``vllm_importance_sampling_correction`` (the vLLM sampler's importance weights multiply the policy-gradient
    term), ``num_iterations``, ``mask_truncated_completions`` and ``reward_weights``. Fields that would change the
    loss in a way these methods do not implement are refused when they differ from TRL's neutral value:
    ``beta`` (KDRL's KL goes to the teacher, not to a reference), ``importance_sampling_level="sequence"``,
    ``top_entropy_quantile < 1``, ``off_policy_mask_threshold``, ``use_adaptive_entropy``,
    ``multi_objective_aggregation="normalize_then_sum"`` and the loss types cispo, sapo, luspo and vespo.

    The guidance schedule counts *training steps* (rollout batches), as the authors' verl loop does: the optimizer
    updates of one rollout batch share one ``lambda_k`` (see :attr:`updates_per_generation`).
    """

    method: str = field(default="tgpo", metadata={"help": f"Training method, one of {', '.join(METHODS)}."})
    guidance_weight: float | None = field(
        default=None, metadata={"help": "TGPO: initial guidance weight lambda_0 (unset: the method's default)."}
    )
    guidance_decay: float | None = field(
        default=None, metadata={"help": "TGPO: decrease of lambda per training step (unset: the method's default)."}
    )
    guidance_min: float = field(default=0.0, metadata={"help": "TGPO: floor of the guidance weight."})
    kdrl_beta: float = field(default=2e-3, metadata={"help": "KDRL: weight of the reverse KL to the teacher."})
    kdrl_estimator: str = field(default="k2", metadata={"help": "KDRL: KL estimator, k1, k2 or k3."})
    entropy_coef: float = field(default=1e-3, metadata={"help": "Entropy bonus coefficient, every method."})
    reward: str = field(default="boxed", metadata={"help": f"Training reward, one of {', '.join(REWARDS)}."})
    teacher_temperature: float | None = field(
        default=None, metadata={"help": "Temperature of the teacher's log-probs (unset: the rollout temperature)."}
    )
    teacher_chunk_size: int | None = field(
        default=DEFAULT_CHUNK_ROWS, metadata={"help": "Rows per teacher forward; None runs the whole batch at once."}
    )
    teacher_chunk_tokens: int | None = field(
        default=DEFAULT_CHUNK_TOKENS,
        metadata={"help": "Positions per pass of the teacher's output head; None: all at once."},
    )
    loss_type: str | None = field(
        default=None,
        metadata={"help": "TRL's aggregation of token losses: dapo, dr_grpo, grpo or bnpo (unset: dapo; LUFFY: the "
                          "authors' token sum over the padded length)."},
    )
    dr_grpo_row_mean: bool | None = field(
        default=None,
        metadata={"help": "loss_type=dr_grpo: divide by rows too (TRL, default) or not (the authors' padded-length sum)."},
    )
    log_guidance_share: bool = field(
        default=False, metadata={"help": "Log the guidance term's gradient share at the final hidden states."}
    )
    agreement_token_classes: dict | None = field(
        default=None, metadata={"help": "{class: regex}: log teacher-student argmax agreement per sampled-token class."}
    )

    teacher_server_url: str | None = field(
        default=None, metadata={"help": "URL of a `vllm serve` teacher (e.g. http://host:8001); None: local teacher."}
    )
    teacher_server_timeout: float = field(
        default=240.0, metadata={"help": "Seconds to wait for the served teacher to answer /health at start-up."}
    )
    teacher_server_top_logprobs: int = field(
        default=1, metadata={"help": "Top-k log-probs asked per position from the served teacher (argmax = top-1)."}
    )
    teacher_server_chunk_size: int = field(
        default=0, metadata={"help": "Sequences per request to the served teacher (0: the whole batch in one)."}
    )

    def __post_init__(self):
        self.method = str(self.method).lower()
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
        if self.loss_type is None or self.loss_type == "":
            self.loss_type = "dr_grpo" if spec.off_policy_traces else "dapo"
            if spec.off_policy_traces and self.dr_grpo_row_mean is None:
                self.dr_grpo_row_mean = False  # LUFFY: the authors' token sum over the padded length
        if self.dr_grpo_row_mean is None:
            self.dr_grpo_row_mean = True
        self._check_types_and_ranges()
        super().__post_init__()
        self._check_choices()
        self._refuse_unhonoured_trl_fields()
        if self.teacher_temperature is None:
            self.teacher_temperature = self.temperature
        if self.steps_per_generation % self.gradient_accumulation_steps != 0:
            raise ValueError(
                f"TGPOConfig: steps_per_generation ({self.steps_per_generation}) must be a multiple of "
                f"gradient_accumulation_steps ({self.gradient_accumulation_steps}), so that every optimizer update "
                "reads one rollout batch (a whole number of PPO mini-batches per generation batch)"
            )

    # --------------------------------------------------------------------------------------- checks
    def _check_types_and_ranges(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or not _numeric_field(f):
                continue
            if isinstance(value, bool) and "bool" not in str(f.type):
                raise ValueError(f"TGPOConfig.{f.name}={value!r}: expected a number")
            if not isinstance(value, (int, float)):
                raise ValueError(f"TGPOConfig.{f.name}={value!r}: expected a number, got {type(value).__name__}")
            if isinstance(value, float) and not math.isfinite(value) and f.name in RANGES:
                raise ValueError(f"TGPOConfig.{f.name}={value!r}: expected a finite number")
        for name, (low, high, low_inclusive) in RANGES.items():
            value = getattr(self, name, None)
            if value is None:
                continue
            too_low = low is not None and (value < low if low_inclusive else value <= low)
            too_high = high is not None and value > high
            if too_low or too_high:
                lo = "" if low is None else (f">= {low}" if low_inclusive else f"> {low}")
                hi = "" if high is None else f"<= {high}"
                raise ValueError(f"TGPOConfig.{name}={value!r}: must be {' and '.join(p for p in (lo, hi) if p)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"TGPOConfig.max_steps={self.max_steps!r}: must be >= 1 (or -1: train num_train_epochs)")
        if self.guidance_min > self.guidance_weight:
            raise ValueError(
                f"TGPOConfig.guidance_min={self.guidance_min!r} is above guidance_weight={self.guidance_weight!r}: the "
                "schedule would never decay"
            )

    def _check_choices(self) -> None:
        if self.kdrl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"TGPOConfig.kdrl_estimator={self.kdrl_estimator!r}; expected k1, k2 or k3")
        if self.reward not in REWARDS:
            raise ValueError(f"TGPOConfig.reward={self.reward!r}; expected one of {', '.join(REWARDS)}")
        if self.scale_rewards not in ("group", "batch", "none"):
            raise ValueError(f"TGPOConfig.scale_rewards={self.scale_rewards!r}; expected group, batch or none")
        if self.loss_type not in SUPPORTED_LOSS_TYPES:
            raise ValueError(
                f"TGPOConfig.loss_type={self.loss_type!r} is not supported by these methods (their surrogate is the "
                f"clipped one); expected one of {', '.join(SUPPORTED_LOSS_TYPES)}"
            )

    def _refuse_unhonoured_trl_fields(self) -> None:
        refused = {
            "beta": (self.beta != 0.0, "TGPO and its baselines use no reference-model KL; KDRL's KL to the teacher "
                                       "is set with kdrl_beta"),
            "use_adaptive_entropy": (self.use_adaptive_entropy, "the entropy bonus is the paper's fixed one"),
            "importance_sampling_level": (self.importance_sampling_level != "token",
                                          "the losses use token-level ratios"),
            "top_entropy_quantile": (self.top_entropy_quantile < 1.0, "the losses keep every token"),
            "off_policy_mask_threshold": (self.off_policy_mask_threshold is not None,
                                          "the losses do not mask off-policy sequences"),
            "multi_objective_aggregation": (self.multi_objective_aggregation != "sum_then_normalize",
                                            "advantages are computed from the summed rewards"),
        }
        for name, (bad, why) in refused.items():
            if bad:
                raise ValueError(f"TGPOConfig.{name}={getattr(self, name)!r} is not supported: {why}")

    # ------------------------------------------------------------------------------------ derived
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
