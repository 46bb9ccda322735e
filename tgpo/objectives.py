"""Every method's objective as pure tensor functions, and one registry entry per method (docs/method.md §1–2).

No I/O, no trainer, no TRL: tensors in, a scalar loss out. Shapes use

* ``B`` — completions in the (micro-)batch, ``T`` — completion tokens (padded),
* ``mask`` — ``[B, T]``, 1 (or True) on real completion tokens, 0 on padding.

Values at masked positions never reach a loss or its gradient, even when they are ``inf`` or ``nan``: every
function sanitises its inputs with the mask before any arithmetic. Losses are *minimised*: a policy-gradient
loss is ``-A * ratio``.

**Aggregation.** The default token mean is over the *whole batch* (``mean_tok``: ``sum(z * m) / sum(m)``). A
trainer that splits a batch into micro-batches passes the batch's token count (``num_tokens``), so the pieces add
up to the same loss. :class:`Aggregation` also names TRL's other normalisations (``loss_type``) and the authors'
sum over a constant padded length (docs/method.md §3).

**Methods as data.** A method's *whole* loss is one function ``(LossInputs, LossConfig) -> LossOutputs``,
registered by name in :data:`METHODS` with everything else the suite needs to know about it (:class:`Method`:
label, teacher reads, schedule defaults, default aggregation, its settings under each preset, the
:class:`LossConfig` fields it reads). The trainer builds :class:`LossInputs` once per micro-batch and calls
:func:`method_loss`. To add a method:

1. write ``def my_method(x: LossInputs, cfg: LossConfig) -> LossOutputs`` below (reuse :func:`surrogate`,
   :func:`aggregate` and the other terms);
2. add one line: ``register("my_method", my_method, label="My method", teacher=...)``;
3. test it in ``tests/test_objectives.py`` and describe it in docs/method.md.

``TGPOConfig``, ``tgpo train`` (and its ``--dry-run`` plan), the presets, the figures and the lab tables read the
method list from :data:`METHODS`; nothing else needs to change unless the method needs a new input tensor (then add
a field to :class:`LossInputs` and fill it in ``TGPOTrainer._loss_inputs``) or a new hyperparameter (then add a
:class:`LossConfig` field and the ``TGPOConfig`` field it is read from).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

KLEstimator = Literal["k1", "k2", "k3"]
RewardScaling = Literal["group", "batch", "none"]

#: Largest |log-ratio| fed to ``exp`` (importance ratios, k3): keeps losses and gradients finite for any
#: log-probs, e.g. an old log-prob of -1e9. Only tokens whose ratio exceeds e^20 ~ 5e8 are affected.
LOG_RATIO_CLAMP = 20.0
#: LUFFY's policy-shaping constant: ``f(p) = p / (p + gamma)`` (docs/method.md §2).
LUFFY_SHAPING_GAMMA = 0.1
#: The group advantage's epsilon in the denominator ``std + eps`` (docs/method.md §1).
ADVANTAGE_EPS = 1e-6


# --------------------------------------------------------------------------------------------- helpers
def _as_bool(mask: Tensor) -> Tensor:
    return mask.bool() if mask.dtype != torch.bool else mask


def _clean(values: Tensor, mask: Tensor) -> Tensor:
    """``values`` with masked positions replaced by 0 (so neither values nor gradients leak from padding)."""
    return values.masked_fill(~_as_bool(mask), 0)


def mean_tok(values: Tensor, mask: Tensor, num_tokens: float | Tensor | None = None) -> Tensor:
    """``mean_tok``: ``sum(values * mask) / sum(mask)`` over the whole batch (docs/method.md §1).

    Args:
        values: ``[B, T]`` per-token quantity.
        mask: ``[B, T]`` completion mask.
        num_tokens: the denominator to use instead of ``sum(mask)`` (the whole batch's token count when this
            call sees one micro-batch). An empty batch gives 0, never NaN.
    Returns: a scalar tensor in ``values.dtype``.
    """
    total = _clean(values, mask).sum()
    if num_tokens is None:
        num_tokens = _as_bool(mask).sum()
    denom = torch.as_tensor(num_tokens, dtype=total.dtype, device=total.device).clamp(min=1)
    return total / denom


# ----------------------------------------------------------------------------------------- aggregation
AggregationKind = Literal["dapo", "dr_grpo", "grpo", "bnpo"]


@dataclass(frozen=True)
class Aggregation:
    """How per-token losses become one scalar; the kinds are TRL's ``GRPOConfig.loss_type`` names.

    * ``dapo`` — token mean over the whole optimizer batch (``mean_tok``; the method's default, docs/method.md §1):
      ``sum / num_tokens``.
    * ``dr_grpo`` — sum over tokens divided by a constant padded length ``padded_length`` (TRL: the
      ``max_completion_length``) and, when ``row_mean`` (TRL's behaviour), by the number of rows and micro-batches.
      ``row_mean=False`` is the authors' ``loss_remove_token_mean``: the token sum of the whole step divided by the
      padded length only (their micro-batch losses are summed; docs/method.md §3).
    * ``grpo`` — mean over rows of each row's own token mean.
    * ``bnpo`` — token mean of this micro-batch.

    ``num_tokens`` is the optimizer batch's token count on this process (``dapo``); ``accumulation`` the number of
    micro-batches of one optimizer step, by which the per-micro-batch kinds are divided so that the pieces add up;
    ``world_size`` the number of data-parallel processes, whose gradients are averaged: the authors' padded-length
    sum is multiplied by it, so that it is the sum over the *whole* batch whatever the number of processes (their
    own run averages per-GPU sums, a constant factor 1/n_gpus below this; docs/method.md §3).
    """

    kind: AggregationKind = "dapo"
    num_tokens: float | Tensor | None = None
    padded_length: int | None = None
    row_mean: bool = True
    accumulation: int = 1
    world_size: int = 1


def aggregate(per_token: Tensor, mask: Tensor, how: Aggregation | None = None) -> Tensor:
    """One micro-batch's share of the batch loss: ``[B, T]`` per-token values -> scalar (see :class:`Aggregation`)."""
    how = how or Aggregation()
    if how.kind == "dapo":
        return mean_tok(per_token, mask, how.num_tokens)
    clean = _clean(per_token, mask)
    if how.kind == "dr_grpo":
        if not how.padded_length:
            raise ValueError("Aggregation('dr_grpo') needs padded_length (the max completion length)")
        if not how.row_mean:  # the authors' micro-batch losses are summed over the step: no division by accumulation
            return clean.sum() * how.world_size / how.padded_length
        return clean.sum() / (max(clean.size(0), 1) * how.padded_length * how.accumulation)
    if how.kind == "grpo":
        per_row = clean.sum(-1) / _as_bool(mask).sum(-1).clamp(min=1)
        return per_row.mean() / how.accumulation if per_row.numel() else clean.sum()
    if how.kind == "bnpo":
        return mean_tok(per_token, mask) / how.accumulation
    raise ValueError(f"unknown aggregation {how.kind!r}; expected dapo, dr_grpo, grpo or bnpo")


# ----------------------------------------------------------------------------------- advantages (§1)
def group_advantages(rewards: Tensor, group_size: int, eps: float = ADVANTAGE_EPS, scale: RewardScaling = "group") -> Tensor:
    """GRPO group advantage ``A = (r - mean_group(r)) / (std + eps)`` (docs/method.md §1).

    Args:
        rewards: ``[N]``, ordered group by group (``N = n_groups * group_size``).
        group_size: ``G``, rollouts per prompt; ``std`` is the unbiased one (``G - 1`` in the denominator).
        scale: ``"group"`` divides by the group's std (the paper's GRPO, TRL's ``scale_rewards="group"``);
            ``"batch"`` by the std of the whole batch; ``"none"`` not at all, ``A = r - mean`` (the authors'
            ``grpo_use_std=False``, Dr. GRPO).
    Returns: ``[N]`` advantages; a group whose rewards are all equal gets exactly 0 whatever ``scale``.
    """
    if rewards.dim() != 1 or group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be [N] with N divisible by group_size={group_size}, got {tuple(rewards.shape)}")
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"unknown reward scaling {scale!r}; expected group, batch or none")
    grouped = rewards.float().view(-1, group_size)
    mean = grouped.mean(dim=1, keepdim=True)
    centred = grouped - mean
    if scale == "group":
        std = grouped.std(dim=1, keepdim=True, unbiased=True) if group_size > 1 else torch.zeros_like(mean)
        centred = centred / (std + eps)
    elif scale == "batch":
        std = grouped.std(unbiased=True) if grouped.numel() > 1 else torch.zeros(())
        centred = centred / (std + eps)
    flat_group = grouped.max(dim=1, keepdim=True).values == grouped.min(dim=1, keepdim=True).values
    advantages = torch.where(flat_group, torch.zeros_like(centred), centred)
    return advantages.view(-1).to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def rkl_advantages(teacher_logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """On-policy distillation's per-token advantage ``A_tok = lp_T - lp_old`` (docs/method.md §2, RKL).

    Args:
        teacher_logp: ``[B, T]`` teacher log-prob of each sampled student token.
        old_logp: ``[B, T]`` rollout-policy log-prob of the same token.
    Returns: ``[B, T]``, detached, 0 at masked positions. In the divergent regime (``lp_T <= -20``) every
    entry is negative: the student is only told what *not* to write.
    """
    return _clean(teacher_logp.detach() - old_logp.detach(), mask)


def tgpo_adv_advantages(advantages: Tensor, old_guided_logp: Tensor, mask: Tensor, weight: float) -> Tensor:
    """TGPO-Adv's per-token advantage ``A[i,t] = A[i] + lambda_k * exp(lp_old_g[i,t])`` (docs/method.md §2).

    Args:
        advantages: ``[B]`` group advantages.
        old_guided_logp: ``[B, T]`` the rollout policy's log-prob of the teacher's argmax token on the student's
            prefix (detached inside).
        weight: ``lambda_k``; 0 gives back ``A[i]`` at every token.
    Returns: ``[B, T]``, detached, 0 at masked positions. The bonus lies in ``[0, lambda_k]``: largest where the
    student already gives the teacher's token high probability.
    """
    bonus = weight * torch.exp(_clean(old_guided_logp.detach(), mask).clamp(max=0.0))
    return _clean(advantages.detach().to(bonus.dtype).unsqueeze(1) + bonus, mask)


# ---------------------------------------------------------------------------------- policy gradient
def surrogate(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    delta: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-token clipped surrogate ``max(-A*rho, -A*clip(rho, 1-eps, 1+eps_high))`` and where it is clipped.

    Args:
        logp: ``[B, T]`` current policy log-probs of the sampled tokens, with gradient.
        old_logp: ``[B, T]`` rollout-policy log-probs (detached inside).
        advantages: ``[B]`` (one per completion) or ``[B, T]`` (per token: RKL, TGPO-Adv).
        clip_eps, clip_eps_high: lower and upper clip range (``eps_high`` defaults to ``eps``; TRL's
            ``epsilon`` / ``epsilon_high``).
        delta: optional cap on the unclipped ratio (two-sided clipping, TRL's ``delta``).
    Returns: ``(per_token_loss [B, T], clipped [B, T] bool)``; ``clipped`` marks real tokens whose gradient is
    zero because the clipped branch is active (``A > 0, rho > 1+eps_high`` or ``A < 0, rho < 1-eps``).
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    high = clip_eps if clip_eps_high is None else clip_eps_high
    advantages = advantages.detach().to(logp.dtype)
    log_ratio = _clean(logp, mask) - _clean(old_logp.detach(), mask)
    ratio = torch.exp(log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    clipped_ratio = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + high)
    unclipped_ratio = ratio if delta is None else torch.clamp(ratio, max=delta)
    per_token = torch.maximum(-advantages * unclipped_ratio, -advantages * clipped_ratio)
    r = ratio.detach()
    clipped = ((advantages > 0) & (r > 1 + high)) | ((advantages < 0) & (r < 1 - clip_eps))
    return per_token, clipped & _as_bool(mask)


# ---------------------------------------------------------------------------------------- TGPO (§2)
def guidance_weight(step: int, initial: float = 2e-3, decay: float = 1e-5, minimum: float = 0.0) -> float:
    """TGPO's annealed weight ``lambda_k = max(initial - (k-1)*decay, minimum)`` at training step ``k >= 1``.

    With the paper's values (2e-3, 1e-5, 0) it reaches 0 at step 201 of 300 (docs/method.md §2).
    """
    if step < 1:
        raise ValueError(f"guidance_weight: step is 1-based, got {step}")
    return max(initial - (step - 1) * decay, minimum)


# ----------------------------------------------------------------------------------------- KL terms
def kl_estimate(logp: Tensor, teacher_logp: Tensor, estimator: KLEstimator = "k2") -> Tensor:
    """Per-token reverse-KL estimator on sampled tokens, ``d = lp - lp_T`` (docs/method.md §2).

    ``k1 = d``, ``k2 = d^2 / 2``, ``k3 = exp(-d) + d - 1`` (inside k3's ``exp`` only, ``d`` is floored at
    ``-LOG_RATIO_CLAMP`` to keep it finite). Shapes: ``[B, T]`` in, ``[B, T]`` out; ``teacher_logp`` is detached.
    """
    d = logp - teacher_logp.detach()
    if estimator == "k1":
        return d
    if estimator == "k2":
        return 0.5 * d * d
    if estimator == "k3":
        return torch.exp(-d.clamp(min=-LOG_RATIO_CLAMP)) + d - 1.0
    raise ValueError(f"unknown KL estimator {estimator!r}; expected 'k1', 'k2' or 'k3'")


# ------------------------------------------------------------------------------------------- entropy
def entropy_bonus(entropy: Tensor, mask: Tensor, coef: float = 1e-3, *, num_tokens: float | Tensor | None = None) -> Tensor:
    """Entropy bonus as a loss term, ``- c_H * mean_tok(H)`` (docs/method.md §1), applied to every method.

    Args:
        entropy: ``[B, T]`` entropy of the student's next-token distribution at each position, with gradient.
    """
    return -coef * mean_tok(entropy, mask, num_tokens)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """``[..., V]`` logits → ``[...]`` entropy of ``softmax(logits)``, finite for logits of any size."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1).to(logits.dtype)


# -------------------------------------------------------------------------------------------- LUFFY
def luffy_per_token(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, off_policy: Tensor,
    shaping_gamma: float = LUFFY_SHAPING_GAMMA,
) -> Tensor:
    """LUFFY's per-token loss (docs/method.md §2): ``-A * rho`` on on-policy rows (no clipping, the authors'
    ``loss_remove_clip``), ``-A * f(pi_theta(y_t))`` with ``f(p) = p / (p + gamma)`` on off-policy rows.

    Args:
        logp, old_logp: ``[B, T]``; ``old_logp`` is only read on on-policy rows.
        advantages: ``[B]`` group advantages over the whole mixed group.
        off_policy: ``[B]`` bool, True for rows that are the dataset's teacher trace.
    Returns: ``[B, T]``, 0 at masked positions.
    """
    adv = advantages.detach().to(logp.dtype).unsqueeze(1)
    logp_c = _clean(logp, mask)
    ratio = torch.exp((logp_c - _clean(old_logp.detach(), mask)).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    prob = torch.exp(logp_c)
    shaped = prob / (prob + shaping_gamma)
    return _clean(torch.where(off_policy.bool().unsqueeze(1), -adv * shaped, -adv * ratio), mask)


# =================================================================================== methods as data
@dataclass(frozen=True)
class LossConfig:
    """The hyperparameters a loss reads: one value per setting, nothing per step.

    Every field is a training-config (``TGPOConfig``) field: the one its metadata names under ``"config"`` (TRL's
    clipping names), else the field of the same name. :meth:`from_config` builds it from any such config.
    """

    clip_eps: float = field(default=0.2, metadata={"config": "epsilon"})
    clip_eps_high: float | None = field(default=None, metadata={"config": "epsilon_high"})
    delta: float | None = field(default=None, metadata={"config": "delta"})
    entropy_coef: float = 1e-3
    entropy_micro_batches: float = 1.0
    kdrl_beta: float = 2e-3
    kdrl_estimator: KLEstimator = "k2"
    luffy_shaping_gamma: float = LUFFY_SHAPING_GAMMA

    @classmethod
    def from_config(cls, config) -> LossConfig:
        """The loss hyperparameters of a training config (``TGPOConfig`` or anything with its field names)."""
        return cls(**{name: getattr(config, source) for name, source in loss_config_sources().items()})


def loss_config_sources() -> dict[str, str]:
    """``{LossConfig field: the TGPOConfig field it is read from}``."""
    return {f.name: f.metadata.get("config", f.name) for f in dataclasses.fields(LossConfig)}


#: The :class:`LossConfig` fields of the clipped policy-gradient term (:func:`surrogate`), read by every method that
#: uses it.
PG_FIELDS = frozenset({"clip_eps", "clip_eps_high", "delta"})
#: The :class:`LossConfig` fields of the entropy bonus, which :func:`method_loss` adds for every method.
ENTROPY_FIELDS = frozenset({"entropy_coef", "entropy_micro_batches"})


@dataclass(frozen=True)
class LossInputs:
    """One micro-batch as every method's loss sees it. ``[B, T]`` tensors are completion positions.

    Attributes:
        logp: current policy's log-prob of the sampled tokens, with gradient.
        old_logp: the rollout policy's log-prob of the same tokens (detached).
        advantages: ``[B]`` group advantages (``[B, T]`` allowed for per-token variants).
        mask: completion mask.
        entropy: the student's per-position entropy, with gradient (entropy bonus).
        aggregation: how per-token losses are reduced (kind, batch token count, accumulation).
        guided_logp: the student's log-prob of the teacher's argmax token ``yT`` (TGPO-Reg: with gradient;
            TGPO-Adv: detached), or None when the method reads none or the guidance weight is 0.
        old_guided_logp: the rollout policy's log-prob of ``yT`` (TGPO-Adv); None when the rollout policy is the
            current one (then ``guided_logp`` is used).
        teacher_logp: the teacher's log-prob of the sampled tokens (RKL, KDRL).
        off_policy: ``[B]`` bool, rows that are teacher traces (LUFFY).
        guidance_weight: ``lambda_k`` at this step (0 for methods without a schedule).
        is_weights: importance weights that correct for a sampler other than the policy (TRL's vLLM correction),
            ``[B, T]`` or ``[B, 1]``; they multiply the policy-gradient term's per-token loss.
    """

    logp: Tensor
    old_logp: Tensor
    advantages: Tensor
    mask: Tensor
    entropy: Tensor
    aggregation: Aggregation = field(default_factory=Aggregation)
    guided_logp: Tensor | None = None
    old_guided_logp: Tensor | None = None
    teacher_logp: Tensor | None = None
    off_policy: Tensor | None = None
    guidance_weight: float = 0.0
    is_weights: Tensor | None = None


@dataclass
class LossOutputs:
    """A method's loss (the scalar to backpropagate), its detached diagnostics, and (optionally) its named terms
    with their graphs, for diagnostics that need gradients of single terms (e.g. the guidance share)."""

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)
    terms: dict[str, Tensor] = field(default_factory=dict)


LossFn = Callable[[LossInputs, LossConfig], LossOutputs]
TeacherRead = Literal["argmax", "logp"]


@dataclass(frozen=True)
class Method:
    """A registered method: everything about it that the rest of the suite reads (trainer, config, presets, plan,
    figures, tables, docs).

    Attributes:
        loss: the method's objective, without the entropy bonus (added by :func:`method_loss` for every method).
        label: the row name in tables and the legend in figures.
        teacher: which teacher outputs the loss reads (``argmax`` -> ``guided_logp``; ``logp`` -> ``teacher_logp``).
        scheduled: the loss reads ``guidance_weight`` and the teacher only while ``lambda_k > 0``.
        guided_grad: ``guided_logp`` must carry gradient (TGPO-Reg) or may be detached (TGPO-Adv).
        off_policy_traces: LUFFY: the dataset's teacher trace replaces one rollout per group.
        outcome_reward: the loss reads the group advantage of the outcome reward (RKL does not: its advantage is per
            token, from the teacher, so reward scaling such as ``scale_rewards`` cannot change it).
        reads: the :class:`LossConfig` fields the loss reads (besides :data:`ENTROPY_FIELDS`, which
            :func:`method_loss` reads for every method); ``tests/test_registry.py`` checks that no other field
            changes the loss.
        defaults: method-specific defaults of ``TGPOConfig`` fields left unset (e.g. the guidance schedule).
        aggregation: ``(loss_type, dr_grpo_row_mean)`` when the config names no ``loss_type`` (docs/method.md §3).
        presets: ``{preset: {TGPOConfig field: value}}``, the method's own settings under a settings preset, on top
            of the preset's ``all`` (``tgpo/resources/presets.yaml``); normalisation and aggregation only.
        curves: plotted in the training-curve figures (Figures 4 and 6).
    """

    loss: LossFn
    label: str
    teacher: frozenset[TeacherRead] = frozenset()
    scheduled: bool = False
    guided_grad: bool = False
    off_policy_traces: bool = False
    outcome_reward: bool = True
    reads: frozenset[str] = PG_FIELDS
    defaults: Mapping[str, object] = field(default_factory=dict)
    aggregation: tuple[AggregationKind, bool] = ("dapo", True)
    presets: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    curves: bool = True

    def __post_init__(self):
        unknown = set(self.reads) - set(loss_config_sources())
        if unknown:
            raise ValueError(f"Method {self.label!r}: reads unknown LossConfig fields {sorted(unknown)}")

    def resolve_aggregation(self, loss_type: str | None, row_mean: bool | None) -> tuple[str, bool]:
        """The ``(loss_type, dr_grpo_row_mean)`` a config gets from the values it sets (None: unset): an unset
        ``loss_type`` is the method's :attr:`aggregation` (its row mean too, unless set); an unset row mean is
        otherwise TRL's (True)."""
        if not loss_type:
            default_type, default_row_mean = self.aggregation
            return default_type, default_row_mean if row_mean is None else row_mean
        return loss_type, True if row_mean is None else row_mean


#: The registry: method name -> :class:`Method`. The only list of methods in the project.
METHODS: dict[str, Method] = {}
#: Deprecated method names still accepted (configs, ``--method``, table rows): old name -> registered name.
ALIASES: dict[str, str] = {}


def register(name: str, loss: LossFn, **spec) -> Method:
    """Add a method to :data:`METHODS` (see the module docstring)."""
    if name in METHODS or name in ALIASES:
        raise ValueError(f"method {name!r} is already registered")
    METHODS[name] = Method(loss=loss, **spec)
    return METHODS[name]


def canonical_method(name: str) -> str:
    """``name`` as registered (lower case); a deprecated alias becomes its new name, with a ``FutureWarning``.
    Unknown names are returned as given (lower case), for the caller's own error message."""
    name = str(name).lower()
    if name in ALIASES:
        warnings.warn(f"method {name!r} is deprecated; use {ALIASES[name]!r} (the old name goes in the next release)",
                      FutureWarning, stacklevel=2)
        return ALIASES[name]
    return name


def method_choices() -> list[str]:
    """Every accepted method name: the registered ones, then the deprecated aliases."""
    return [*METHODS, *ALIASES]


def _pg(x: LossInputs, cfg: LossConfig, advantages: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The clipped policy-gradient term, aggregated, with the vLLM importance weights; and its diagnostics."""
    per_token, clipped = surrogate(x.logp, x.old_logp, x.advantages if advantages is None else advantages, x.mask,
                                   cfg.clip_eps, cfg.clip_eps_high, cfg.delta)
    if x.is_weights is not None:
        per_token = per_token * x.is_weights.detach().to(per_token.dtype)
    loss = aggregate(per_token, x.mask, x.aggregation)
    return loss, clip_ratios(clipped, x.advantages if advantages is None else advantages, x.mask)


def clip_ratios(clipped: Tensor, advantages: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """TRL's ``clip_ratio/*`` diagnostics, with TRL's meaning: the share of real tokens clipped below (``A < 0``),
    above (``A > 0``) and either (``region``), as token means (scalars); and ``low_min`` / ``high_max`` as ``[B]``
    per-sequence shares (NaN for an empty row), whose min / max over the whole batch the trainer logs."""
    a = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    low, high = clipped & (a < 0), clipped & (a > 0)
    m = mask.to(torch.float32)
    per_row = lambda z: (z.float() * m).sum(-1) / m.sum(-1)  # noqa: E731
    return {"clip_ratio/low_mean": mean_tok(low.float(), mask), "clip_ratio/high_mean": mean_tok(high.float(), mask),
            "clip_ratio/region_mean": mean_tok(clipped.float(), mask),
            "clip_ratio/low_min": per_row(low), "clip_ratio/high_max": per_row(high)}


def _aux(per_token: Tensor, x: LossInputs) -> Tensor:
    """An auxiliary per-token term (guidance, KL) aggregated the way the policy-gradient term is."""
    return aggregate(per_token, x.mask, x.aggregation)


def grpo(x: LossInputs, cfg: LossConfig) -> LossOutputs:
    """GRPO (the paper's "GRPO++"): ``PG(A)`` (docs/method.md §2)."""
    loss, metrics = _pg(x, cfg)
    return LossOutputs(loss, metrics)


def tgpo(x: LossInputs, cfg: LossConfig) -> LossOutputs:
    """TGPO-Reg: ``PG(A) + lambda_k * agg(-lp_g)``; exactly GRPO once ``lambda_k == 0`` (docs/method.md §2)."""
    pg, metrics = _pg(x, cfg)
    if x.guidance_weight > 0 and x.guided_logp is not None:
        guidance = x.guidance_weight * _aux(-x.guided_logp, x)
        metrics["guidance_loss"] = mean_tok(-x.guided_logp.detach(), x.mask)
        return LossOutputs(pg + guidance, metrics, {"pg": pg, "guidance": guidance})
    return LossOutputs(pg, metrics, {"pg": pg})


def tgpo_adv(x: LossInputs, cfg: LossConfig) -> LossOutputs:
    """TGPO-Adv (the authors' ``tipo_adv``): ``PG`` with the per-token advantage of :func:`tgpo_adv_advantages`."""
    if x.guidance_weight > 0 and x.guided_logp is not None:
        old_guided = x.old_guided_logp if x.old_guided_logp is not None else x.guided_logp
        advantages = tgpo_adv_advantages(x.advantages, old_guided, x.mask, x.guidance_weight)
        loss, metrics = _pg(x, cfg, advantages)
        metrics["tipo_bonus"] = mean_tok(advantages - x.advantages.detach().unsqueeze(1).to(advantages.dtype), x.mask)
        return LossOutputs(loss, metrics)
    loss, metrics = _pg(x, cfg)
    return LossOutputs(loss, metrics)


def rkl(x: LossInputs, cfg: LossConfig) -> LossOutputs:
    """RKL (on-policy distillation): ``PG(A_tok)`` with ``A_tok = lp_T - lp_old`` and no outcome reward."""
    advantages = rkl_advantages(x.teacher_logp, x.old_logp, x.mask)
    loss, metrics = _pg(x, cfg, advantages)
    metrics["teacher/kl_k1"] = mean_tok(x.logp.detach() - x.teacher_logp, x.mask)
    return LossOutputs(loss, metrics)


def kdrl(x: LossInputs, cfg: LossConfig) -> LossOutputs:
    """KDRL: ``PG(A) + beta * agg(k(lp, lp_T))`` with a k2 (or k3) estimator: a correct reverse KL."""
    loss, metrics = _pg(x, cfg)
    logp, teacher = _clean(x.logp, x.mask), _clean(x.teacher_logp, x.mask)
    loss = loss + cfg.kdrl_beta * _aux(kl_estimate(logp, teacher, cfg.kdrl_estimator), x)
    metrics["teacher/kl_k1"] = mean_tok(x.logp.detach() - x.teacher_logp, x.mask)
    return LossOutputs(loss, metrics)


def kdrl_authors(x: LossInputs, cfg: LossConfig) -> LossOutputs:
    """The authors' KDRL (``- beta * agg(k1)``: sign-flipped, and k1's gradient ignores the teacher; docs/method.md §2),
    kept only to reproduce their row. Use :func:`kdrl` for a correct KDRL."""
    loss, metrics = _pg(x, cfg)
    logp, teacher = _clean(x.logp, x.mask), _clean(x.teacher_logp, x.mask)
    loss = loss - cfg.kdrl_beta * _aux(kl_estimate(logp, teacher, "k1"), x)
    metrics["teacher/kl_k1"] = mean_tok(x.logp.detach() - x.teacher_logp, x.mask)
    return LossOutputs(loss, metrics)


def luffy(x: LossInputs, cfg: LossConfig) -> LossOutputs:
    """LUFFY: :func:`luffy_per_token` over the mixed group, aggregated as configured."""
    off = x.off_policy if x.off_policy is not None else x.logp.new_zeros(x.logp.size(0), dtype=torch.bool)
    per_token = luffy_per_token(x.logp, x.old_logp, x.advantages, x.mask, off, cfg.luffy_shaping_gamma)
    if x.is_weights is not None:  # the correction only applies to on-policy rows (teacher traces were not sampled)
        per_token = torch.where(off.unsqueeze(1), per_token, per_token * x.is_weights.detach().to(per_token.dtype))
    loss = aggregate(per_token, x.mask, x.aggregation)
    return LossOutputs(loss)


#: Settings presets (tgpo/resources/presets.yaml) whose method-specific aggregation the entries below refer to.
_AUTHORS_SUM = {"loss_type": "dr_grpo", "dr_grpo_row_mean": False}  # the authors' loss_remove_token_mean

register("grpo", grpo, label="GRPO", presets={"authors_final": _AUTHORS_SUM})
# LUFFY: its own token sum over the padded length by default and in the authors' first scripts; their final launcher
# runs it with a token mean (docs/method.md §3), which authors_final's `all` gives it.
register("luffy", luffy, label="LUFFY", off_policy_traces=True, reads=frozenset({"luffy_shaping_gamma"}),
         aggregation=("dr_grpo", False), presets={"authors_early": _AUTHORS_SUM})
register("rkl", rkl, label="RKL", teacher=frozenset({"logp"}), outcome_reward=False)
register("kdrl", kdrl, label="KDRL (k2)", teacher=frozenset({"logp"}),
         reads=PG_FIELDS | {"kdrl_beta", "kdrl_estimator"})
register("kdrl_authors", kdrl_authors, label="KDRL (authors' variant)", teacher=frozenset({"logp"}),
         reads=PG_FIELDS | {"kdrl_beta"}, curves=False)
register("tgpo", tgpo, label="TGPO-Reg", teacher=frozenset({"argmax"}), scheduled=True, guided_grad=True,
         defaults={"guidance_weight": 2e-3, "guidance_decay": 1e-5}, presets={"authors_final": {"scale_rewards": "group"}})
register("tgpo_adv", tgpo_adv, label="TGPO-Adv", teacher=frozenset({"argmax"}), scheduled=True,
         defaults={"guidance_weight": 2e-2, "guidance_decay": 1e-4}, presets={"authors_final": {"scale_rewards": "group"}})
ALIASES["kdrl_reference"] = "kdrl_authors"
#: Deprecated names of the functions above (one release).
kdrl_reference = kdrl_authors
tipo_advantages = tgpo_adv_advantages


def method_loss(name: str, x: LossInputs, cfg: LossConfig) -> LossOutputs:
    """The registered method's loss plus the entropy bonus ``- c_H * m * mean_tok(H)`` every method carries.

    ``m`` is ``cfg.entropy_micro_batches`` (1 by default). The authors take the entropy's token mean per (dynamic)
    micro-batch and *sum* it over the micro-batches of an update, while their policy-gradient term is either such a
    sum of token means too (then the ratio of the two terms is the suite's at ``m = 1``) or their padded-length sum
    (then their bonus is ``n_micro`` times stronger against it, ``n_micro`` their micro-batches over all GPUs):
    ``m`` states that factor (docs/method.md §3; ``tgpo train --dry-run`` prints it).
    """
    name = canonical_method(name)
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    out = METHODS[name].loss(x, cfg)
    out.metrics["policy_loss"] = out.loss.detach()  # TRL's name and meaning: the loss without the entropy bonus
    coef = cfg.entropy_coef * cfg.entropy_micro_batches
    num_tokens = x.aggregation.num_tokens if x.aggregation.kind == "dapo" else None
    if num_tokens is None:  # the other kinds are per micro-batch: the bonus is too, and sums over accumulation
        bonus = entropy_bonus(x.entropy, x.mask, coef) / x.aggregation.accumulation
    else:
        bonus = entropy_bonus(x.entropy, x.mask, coef, num_tokens=num_tokens)
    out.loss = out.loss + bonus
    out.metrics["entropy"] = mean_tok(x.entropy.detach(), x.mask)
    return out
