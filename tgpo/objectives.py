"""Every method's objective as pure tensor functions (../shared/SPEC.md §1–2).

No I/O, no trainer, no TRL: tensors in, a scalar loss out. Shapes use

* ``B`` — completions in the batch, ``T`` — completion tokens (padded),
* ``mask`` — ``[B, T]``, 1 (or True) on real completion tokens, 0 on padding.

All token means are over the *whole batch* (SPEC's ``mean_tok``): ``sum(z * m) / sum(m)``. A trainer that
splits a batch into micro-batches passes ``num_tokens`` (the token count of the whole batch) so the pieces
add up to the same loss. Values at masked positions never reach the loss or its gradient, even when they
are ``inf`` or ``nan``: every function sanitises its inputs with the mask before any arithmetic.

Losses are *minimised*: a policy-gradient loss is ``-A * ratio``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

KLEstimator = Literal["k1", "k2", "k3"]

#: Largest |log-ratio| fed to ``exp`` (importance ratios, k3): keeps losses and gradients finite for any
#: log-probs, e.g. an old log-prob of -1e9. Only tokens whose ratio exceeds e^20 ~ 5e8 are affected.
LOG_RATIO_CLAMP = 20.0
#: LUFFY's policy-shaping constant: ``f(p) = p / (p + gamma)`` (SPEC §2).
LUFFY_SHAPING_GAMMA = 0.1


# --------------------------------------------------------------------------------------------- helpers
def _as_bool(mask: Tensor) -> Tensor:
    return mask.bool() if mask.dtype != torch.bool else mask


def _clean(values: Tensor, mask: Tensor) -> Tensor:
    """``values`` with masked positions replaced by 0 (so neither values nor gradients leak from padding)."""
    return torch.where(_as_bool(mask), values, torch.zeros((), dtype=values.dtype, device=values.device))


def mean_tok(values: Tensor, mask: Tensor, num_tokens: float | Tensor | None = None) -> Tensor:
    """SPEC's ``mean_tok``: ``sum(values * mask) / sum(mask)`` over the whole batch.

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


# ----------------------------------------------------------------------------------- advantages (§1)
def group_advantages(rewards: Tensor, group_size: int, eps: float = 1e-6) -> Tensor:
    """GRPO group advantage ``A = (r - mean_group(r)) / (std_group(r) + eps)`` (SPEC §1).

    Args:
        rewards: ``[N]``, ordered group by group (``N = n_groups * group_size``).
        group_size: ``G``, rollouts per prompt; ``std`` is the unbiased one (``G - 1`` in the denominator).
    Returns: ``[N]`` advantages; a group whose rewards are all equal gets exactly 0.
    """
    if rewards.dim() != 1 or group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be [N] with N divisible by group_size={group_size}, got {tuple(rewards.shape)}")
    grouped = rewards.float().view(-1, group_size)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True, unbiased=True) if group_size > 1 else torch.zeros_like(mean)
    centred = grouped - mean
    flat_group = (grouped.max(dim=1, keepdim=True).values == grouped.min(dim=1, keepdim=True).values)
    advantages = torch.where(flat_group, torch.zeros_like(centred), centred / (std + eps))
    return advantages.view(-1).to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def rkl_advantages(teacher_logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """On-policy distillation's per-token advantage ``A_tok = lp_T - lp_old`` (SPEC §2, RKL row).

    Args:
        teacher_logp: ``[B, T]`` teacher log-prob of each sampled student token.
        old_logp: ``[B, T]`` rollout-policy log-prob of the same token.
    Returns: ``[B, T]``, detached, 0 at masked positions. In the divergent regime (``lp_T <= -20``) every
    entry is negative: the student is only told what *not* to write.
    """
    return _clean(teacher_logp.detach() - old_logp.detach(), mask)


# ---------------------------------------------------------------------------------- policy gradient
def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    *,
    num_tokens: float | Tensor | None = None,
) -> Tensor:
    """Clipped surrogate ``PG(A) = mean_tok(max(-A*rho, -A*clip(rho, 1-eps, 1+eps)))`` (SPEC §1).

    Args:
        logp: ``[B, T]`` current policy log-probs of the sampled tokens, with gradient.
        old_logp: ``[B, T]`` rollout-policy log-probs (detached inside).
        advantages: ``[B]`` (one per completion: GRPO, KDRL, TGPO) or ``[B, T]`` (per token: RKL).
        mask: ``[B, T]`` completion mask.
        clip_eps: ``eps``; a token's gradient is zero exactly where the clipped branch is the max and ``rho``
            lies outside ``[1-eps, 1+eps]`` (``A > 0, rho > 1+eps`` or ``A < 0, rho < 1-eps``).
    Returns: scalar loss.
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    advantages = advantages.detach().to(logp.dtype)
    log_ratio = _clean(logp, mask) - _clean(old_logp.detach(), mask)
    ratio = torch.exp(log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return mean_tok(torch.maximum(unclipped, clipped), mask, num_tokens)


def clip_fraction(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_eps: float = 0.2) -> Tensor:
    """Share of real tokens whose surrogate is clipped (their gradient is zero): a training diagnostic."""
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    ratio = torch.exp((_clean(logp.detach(), mask) - _clean(old_logp.detach(), mask)).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    clipped = ((advantages > 0) & (ratio > 1 + clip_eps)) | ((advantages < 0) & (ratio < 1 - clip_eps))
    return mean_tok(clipped.to(logp.dtype), mask)


# ---------------------------------------------------------------------------------------- TGPO (§2)
def guidance_loss(guided_logp: Tensor, mask: Tensor, *, num_tokens: float | Tensor | None = None) -> Tensor:
    """TGPO's guidance term ``mean_tok(-lp_g)`` (SPEC §2).

    Args:
        guided_logp: ``[B, T]`` the *student's* log-prob of the teacher's argmax token ``yT`` at each position
            of the student's own rollout, with gradient.
    Returns: scalar. Its gradient w.r.t. the logits at a position is ``(softmax(z) - onehot(yT)) / N_tok``,
    bounded whatever the teacher's probability of the student's sample.
    """
    return mean_tok(-guided_logp, mask, num_tokens)


def guidance_weight(step: int, initial: float = 2e-3, decay: float = 1e-5, minimum: float = 0.0) -> float:
    """TGPO's annealed weight ``lambda_k = max(initial - (k-1)*decay, minimum)`` at optimizer step ``k >= 1``.

    With the paper's values (2e-3, 1e-5, 0) it reaches 0 at step 201 of 300 (SPEC §2).
    """
    if step < 1:
        raise ValueError(f"guidance_weight: step is 1-based, got {step}")
    return max(initial - (step - 1) * decay, minimum)


def tgpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    guided_logp: Tensor,
    mask: Tensor,
    weight: float,
    clip_eps: float = 0.2,
    *,
    num_tokens: float | Tensor | None = None,
) -> Tensor:
    """TGPO: ``PG(A) + lambda_k * mean_tok(-lp_g)`` (SPEC §2). With ``weight == 0`` it *is* GRPO's loss."""
    pg = policy_loss(logp, old_logp, advantages, mask, clip_eps, num_tokens=num_tokens)
    if weight == 0:
        return pg
    return pg + weight * guidance_loss(guided_logp, mask, num_tokens=num_tokens)


# ----------------------------------------------------------------------------------------- KL terms
def kl_estimate(logp: Tensor, teacher_logp: Tensor, estimator: KLEstimator = "k2") -> Tensor:
    """Per-token reverse-KL estimator on sampled tokens, ``d = lp - lp_T`` (SPEC §2).

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


def kl_penalty(
    logp: Tensor,
    teacher_logp: Tensor,
    mask: Tensor,
    estimator: KLEstimator = "k2",
    *,
    num_tokens: float | Tensor | None = None,
) -> Tensor:
    """``mean_tok`` of a reverse-KL estimator between student and teacher (KDRL's penalty, SPEC §2).

    Only k2 and k3 give a gradient that depends on the teacher: k1's pathwise gradient is ``grad lp``.
    k2's gradient is ``(lp - lp_T) * grad lp / N_tok``.
    """
    logp, teacher_logp = _clean(logp, mask), _clean(teacher_logp, mask)
    return mean_tok(kl_estimate(logp, teacher_logp, estimator), mask, num_tokens)


def kdrl_penalty(
    logp: Tensor,
    teacher_logp: Tensor,
    mask: Tensor,
    beta: float = 2e-3,
    estimator: KLEstimator = "k2",
    *,
    num_tokens: float | Tensor | None = None,
) -> Tensor:
    """Correct KDRL term added to GRPO's loss: ``+ beta * mean_tok(k(lp, lp_T))`` (minimises reverse KL)."""
    return beta * kl_penalty(logp, teacher_logp, mask, estimator, num_tokens=num_tokens)


def kdrl_reference_penalty(
    logp: Tensor,
    teacher_logp: Tensor,
    mask: Tensor,
    beta: float = 2e-3,
    *,
    num_tokens: float | Tensor | None = None,
) -> Tensor:
    """The KDRL term **as the TGPO authors' code runs it** — NOT a correct KDRL (SPEC §2 audit note).

    ``- beta * mean_tok(k1)``: the sign is flipped (it *maximises* the k1 estimate) and k1's pathwise
    gradient does not depend on the teacher at all. Kept only to reproduce the paper's KDRL row
    (method ``kdrl_reference``); use :func:`kdrl_penalty` for the real thing.
    """
    return -beta * kl_penalty(logp, teacher_logp, mask, "k1", num_tokens=num_tokens)


# ------------------------------------------------------------------------------------------- entropy
def entropy_bonus(entropy: Tensor, mask: Tensor, coef: float = 1e-3, *, num_tokens: float | Tensor | None = None) -> Tensor:
    """Entropy bonus as a loss term, ``- c_H * mean_tok(H)`` (SPEC §1), applied to every method.

    Args:
        entropy: ``[B, T]`` entropy of the student's next-token distribution at each position, with gradient.
    """
    return -coef * mean_tok(entropy, mask, num_tokens)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """``[..., V]`` logits → ``[...]`` entropy of ``softmax(logits)``, finite for logits of any size."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1).to(logits.dtype)


# -------------------------------------------------------------------------------------------- LUFFY
def luffy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    off_policy: Tensor,
    shaping_gamma: float = LUFFY_SHAPING_GAMMA,
) -> Tensor:
    """LUFFY's mixed-policy loss as the authors run it (SPEC §2, "LUFFY as run by the authors").

    Args:
        logp: ``[B, T]`` current log-probs of the group's tokens (student rollouts and teacher traces).
        old_logp: ``[B, T]`` rollout log-probs (only used on on-policy rows).
        advantages: ``[B]`` group advantages computed over the whole mixed group.
        off_policy: ``[B]`` bool, True for rows that are the dataset's teacher trace.
    On-policy tokens use the unclipped surrogate ``-A * rho``; off-policy tokens use ``-A * f(pi_theta(y_t))``
    with ``f(p) = p / (p + gamma)``. Token losses are summed and divided by the padded length ``T`` and the
    number of rows ``B`` (i.e. a mean over padded positions), not by the token count.
    Returns: scalar loss.
    """
    adv = advantages.detach().to(logp.dtype).unsqueeze(1)
    logp_c = _clean(logp, mask)
    ratio = torch.exp((logp_c - _clean(old_logp.detach(), mask)).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    prob = torch.exp(logp_c)
    shaped = prob / (prob + shaping_gamma)
    per_token = torch.where(off_policy.bool().unsqueeze(1), -adv * shaped, -adv * ratio)
    return _clean(per_token, mask).sum() / max(mask.numel(), 1)
