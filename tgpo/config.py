"""``TGPOConfig``: TRL's ``GRPOConfig`` plus the fields that choose and tune a method (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

METHODS = ("grpo", "tgpo", "rkl", "kdrl", "kdrl_reference", "luffy")
#: Methods whose loss reads the teacher pass (TGPO only while its guidance weight is > 0).
TEACHER_METHODS = ("tgpo", "rkl", "kdrl", "kdrl_reference")


@dataclass
class TGPOConfig(GRPOConfig):
    """Every ``GRPOConfig`` field, plus:

    * ``method`` — ``grpo | tgpo | rkl | kdrl | kdrl_reference | luffy`` (SPEC §2's table; ``kdrl_reference`` is
      the authors' sign-flipped k1 variant, kept only to reproduce their KDRL row).
    * ``guidance_weight``, ``guidance_decay``, ``guidance_min`` — TGPO's ``lambda_k = max(l0 - (k-1)*delta, min)``.
    * ``kdrl_beta``, ``kdrl_estimator`` — KDRL's reverse-KL weight and estimator (``k1 | k2 | k3``).
    * ``entropy_coef`` — entropy bonus, every method (TRL's field, default changed to SPEC's 0.001).
    * ``teacher_chunk_size`` — rows per teacher forward (``None``: the whole batch at once).
    * ``teacher_server_url`` — score rollouts with a teacher served by ``vllm serve`` at this URL instead of a local
      model (``teacher_model`` then only names the teacher's tokenizer for the vocabulary check);
      ``teacher_server_timeout`` (seconds to wait for it at start-up), ``teacher_server_top_logprobs`` (top-k asked
      per position; > 1 lets the argmax skip ids the student cannot emit) and ``teacher_server_chunk_size``
      (sequences per request, sent concurrently).

    The guidance schedule counts *training steps* (rollout batches), as the authors' verl loop does: with
    ``steps_per_generation = 2 x gradient_accumulation_steps`` (two PPO mini-batches per rollout batch) the two
    optimizer updates of one batch share one ``lambda_k`` (see :attr:`updates_per_generation`).

    The loss is always SPEC's token mean over the batch (TRL's ``dapo`` normalisation; LUFFY keeps its padded-length
    mean); ``beta`` (TRL's reference-model KL) must stay 0 — KDRL's KL goes to the teacher, not to a reference.
    """

    method: str = field(default="tgpo", metadata={"help": f"Training method, one of {', '.join(METHODS)}."})
    guidance_weight: float = field(default=2e-3, metadata={"help": "TGPO: initial guidance weight lambda_0."})
    guidance_decay: float = field(default=1e-5, metadata={"help": "TGPO: decrease of lambda per optimizer step."})
    guidance_min: float = field(default=0.0, metadata={"help": "TGPO: floor of the guidance weight."})
    kdrl_beta: float = field(default=2e-3, metadata={"help": "KDRL: weight of the reverse KL to the teacher."})
    kdrl_estimator: str = field(default="k2", metadata={"help": "KDRL: KL estimator, k1, k2 or k3."})
    entropy_coef: float = field(default=1e-3, metadata={"help": "Entropy bonus coefficient, every method."})
    teacher_chunk_size: int | None = field(
        default=16, metadata={"help": "Rows per teacher forward; None runs the whole batch at once."}
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
        super().__post_init__()
        self.method = self.method.lower()
        if self.method not in METHODS:
            raise ValueError(f"TGPOConfig.method={self.method!r}; expected one of {', '.join(METHODS)}")
        if self.kdrl_estimator not in ("k1", "k2", "k3"):
            raise ValueError(f"TGPOConfig.kdrl_estimator={self.kdrl_estimator!r}; expected k1, k2 or k3")
        if self.beta != 0.0:
            raise ValueError(
                "TGPOConfig.beta must be 0: TGPO and its baselines use no reference-model KL (SPEC §3); "
                "KDRL's KL to the teacher is set with kdrl_beta."
            )
        if self.use_adaptive_entropy:
            raise ValueError("TGPOConfig does not support use_adaptive_entropy: the entropy bonus is SPEC's fixed one")
        if self.teacher_chunk_size is not None and self.teacher_chunk_size < 1:
            raise ValueError(f"TGPOConfig.teacher_chunk_size must be >= 1 or None, got {self.teacher_chunk_size}")
        if self.teacher_server_top_logprobs < 1:
            raise ValueError(f"TGPOConfig.teacher_server_top_logprobs must be >= 1, got {self.teacher_server_top_logprobs}")
        if self.steps_per_generation % self.gradient_accumulation_steps != 0:
            raise ValueError(
                f"TGPOConfig: steps_per_generation ({self.steps_per_generation}) must be a multiple of "
                f"gradient_accumulation_steps ({self.gradient_accumulation_steps}), so that every optimizer update "
                "reads one rollout batch (a whole number of PPO mini-batches per generation batch)"
            )

    @property
    def updates_per_generation(self) -> int:
        """Optimizer updates per rollout (generation) batch: SPEC's PPO mini-batches per training step."""
        return max(1, self.steps_per_generation // self.gradient_accumulation_steps)

    @property
    def needs_teacher(self) -> bool:
        """Whether the method ever reads a teacher pass (TGPO: only if its initial weight is > 0)."""
        if self.method == "tgpo":
            return max(self.guidance_weight, self.guidance_min) > 0
        return self.method in TEACHER_METHODS
