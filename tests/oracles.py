"""Naive reference formulas of every method's loss: the test oracles of ``tgpo.objectives``.

Written straight from the equations of docs/method.md §1–3, independently of the registry: nothing here imports
``tgpo``. Every quantity is a loop over rows ``i`` and real tokens ``t`` (padding is skipped, never multiplied by
0), in float64, so that a mistake in the library's vectorised code (a dropped mask, a wrong sign, a mean in place of
a sum, a missing detach) cannot be repeated here by sharing code. Inputs are ``[B, T]`` tensors as in
:class:`tgpo.objectives.LossInputs`; the results keep the autograd graph of ``logp``, ``guided_logp`` and
``entropy``, so tests compare gradients too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: The group advantage's epsilon (docs/method.md §1) and LUFFY's shaping constant (§2), from the text, not the code.
EPS = 1e-6
GAMMA = 0.1


@dataclass(frozen=True)
class Agg:
    """An aggregation as docs/method.md §1 and §3 state it (names as TRL's ``loss_type``)."""

    kind: str = "dapo"
    num_tokens: float | None = None  # dapo: the optimizer batch's token count on this process
    padded_length: int | None = None  # dr_grpo: L
    row_mean: bool = True
    accumulation: int = 1
    world_size: int = 1


def real(mask, i, t) -> bool:
    return bool(mask[i, t])


def tokens(mask):
    """``(i, t)`` of every real token."""
    return [(i, t) for i in range(mask.shape[0]) for t in range(mask.shape[1]) if real(mask, i, t)]


def agg(term, mask, how: Agg):
    """Reduce the per-token function ``term(i, t) -> scalar tensor`` over the real tokens of ``mask``."""
    zero = torch.zeros((), dtype=torch.float64)
    total = sum((term(i, t) for i, t in tokens(mask)), zero)
    n = len(tokens(mask))
    if how.kind == "dapo":  # mean_tok over the optimizer batch
        return total / max(how.num_tokens if how.num_tokens is not None else n, 1)
    if how.kind == "dr_grpo":
        if not how.row_mean:  # the authors' loss_remove_token_mean: the whole batch's sum over L
            return total * how.world_size / how.padded_length
        return total / (mask.shape[0] * how.padded_length * how.accumulation)
    if how.kind == "grpo":  # mean over rows of each row's token mean
        rows = []
        for i in range(mask.shape[0]):
            ts = [t for t in range(mask.shape[1]) if real(mask, i, t)]
            rows.append(sum((term(i, t) for t in ts), zero) / max(len(ts), 1))
        return sum(rows, zero) / len(rows) / how.accumulation if rows else zero
    if how.kind == "bnpo":  # token mean of this micro-batch
        return total / max(n, 1) / how.accumulation
    raise AssertionError(how.kind)


def group_advantages(rewards, group_size: int, scale: str = "group"):
    """``A[i] = (r[i] - mean_group r) / (std + eps)`` (unbiased std), 0 for a group of equal rewards."""
    r = [float(x) for x in rewards]
    groups = [r[k:k + group_size] for k in range(0, len(r), group_size)]

    def std(xs):
        if len(xs) < 2:
            return 0.0
        m = sum(xs) / len(xs)
        return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))

    out = []
    for g in groups:
        m = sum(g) / len(g)
        for x in g:
            if max(g) == min(g):
                out.append(0.0)
            elif scale == "group":
                out.append((x - m) / (std(g) + EPS))
            elif scale == "batch":
                out.append((x - m) / (std(r) + EPS))
            else:
                out.append(x - m)
    return torch.tensor(out, dtype=torch.float64)


def pg_token(lp, lp_old, a, eps=0.2, eps_high=None, delta=None):
    """``max(-A*rho, -A*clip(rho, 1-eps, 1+eps_high))`` with ``rho = exp(lp - lp_old)`` (``rho`` capped at ``delta``
    in the unclipped branch when given)."""
    high = eps if eps_high is None else eps_high
    rho = torch.exp(lp.double() - float(lp_old))
    clipped = torch.clamp(rho, 1 - eps, 1 + high)
    unclipped = rho if delta is None else torch.clamp(rho, max=delta)
    return torch.maximum(-a * unclipped, -a * clipped)


def kl_token(lp, lp_t, estimator):
    d = lp.double() - float(lp_t)
    if estimator == "k1":
        return d
    if estimator == "k2":
        return d * d / 2
    return torch.exp(-d) + d - 1


def loss(method: str, *, logp, old_logp, advantages, mask, entropy, how: Agg = Agg(), guided_logp=None,
         old_guided_logp=None, teacher_logp=None, off_policy=None, weight=0.0, is_weights=None, clip_eps=0.2,
         clip_eps_high=None, delta=None, entropy_coef=1e-3, beta=2e-3, estimator="k2", gamma=GAMMA):
    """The whole loss of ``method`` (docs/method.md §2) plus the entropy bonus ``-c_H * mean_tok(H)`` (§1; pass
    ``entropy_coef = c_H * m`` for the authors' factor ``m``, §3).

    The entropy bonus is reduced like the policy-gradient term under ``dapo`` (over the optimizer batch) and as this
    micro-batch's token mean, divided by the accumulation, under the other kinds.
    """

    def a_seq(i, t):
        return float(advantages[i]) if advantages.dim() == 1 else float(advantages[i, t])

    def isw(i, t):
        if is_weights is None:
            return 1.0
        return float(is_weights[i, t] if is_weights.shape[1] > 1 else is_weights[i, 0])

    def pg(adv):
        return agg(lambda i, t: pg_token(logp[i, t], old_logp[i, t], adv(i, t), clip_eps, clip_eps_high, delta)
                   * isw(i, t), mask, how)

    guided_on = weight > 0 and guided_logp is not None
    if method == "grpo":
        total = pg(a_seq)
    elif method == "tgpo":
        total = pg(a_seq)
        if guided_on:
            total = total + weight * agg(lambda i, t: -guided_logp[i, t].double(), mask, how)
    elif method == "tgpo_adv":
        if guided_on:
            old_g = guided_logp if old_guided_logp is None else old_guided_logp
            total = pg(lambda i, t: a_seq(i, t) + weight * math.exp(float(old_g[i, t])))
        else:
            total = pg(a_seq)
    elif method == "rkl":
        total = pg(lambda i, t: float(teacher_logp[i, t]) - float(old_logp[i, t]))
    elif method == "kdrl":
        total = pg(a_seq) + beta * agg(lambda i, t: kl_token(logp[i, t], teacher_logp[i, t], estimator), mask, how)
    elif method in ("kdrl_reference", "kdrl_authors"):  # the authors' variant: minus beta times the k1 estimate
        total = pg(a_seq) - beta * agg(lambda i, t: kl_token(logp[i, t], teacher_logp[i, t], "k1"), mask, how)
    elif method == "luffy":
        def luffy_token(i, t):
            a = a_seq(i, t)
            if off_policy is not None and bool(off_policy[i]):  # teacher trace: -A * p/(p+gamma), no weights
                p = torch.exp(logp[i, t].double())
                return -a * p / (p + gamma)
            return -a * torch.exp(logp[i, t].double() - float(old_logp[i, t])) * isw(i, t)  # unclipped
        total = agg(luffy_token, mask, how)
    else:
        raise AssertionError(method)
    return total + entropy_term(entropy, mask, how, entropy_coef)


def entropy_term(entropy, mask, how: Agg, coef):
    """``-c_H * mean_tok(H)``: over the optimizer batch under ``dapo``, per micro-batch (/ accumulation) otherwise."""
    if how.kind == "dapo":
        return -coef * agg(lambda i, t: entropy[i, t].double(), mask, how)
    return -coef * agg(lambda i, t: entropy[i, t].double(), mask, Agg("bnpo", accumulation=how.accumulation))


def metrics(method: str, *, logp, old_logp, advantages, mask, entropy, guided_logp=None, old_guided_logp=None,
            teacher_logp=None, weight=0.0, clip_eps=0.2, clip_eps_high=None, **_):
    """The diagnostics every method logs (token means over this micro-batch; TRL's ``clip_ratio/low_min`` and
    ``high_max`` as per-sequence shares), except ``policy_loss``."""
    mean = Agg("bnpo")
    out = {"entropy": agg(lambda i, t: float(entropy[i, t].detach()), mask, mean)}
    if method == "luffy":
        return out
    high = clip_eps if clip_eps_high is None else clip_eps_high
    adv = advantages
    if method == "rkl":
        adv = torch.tensor([[float(teacher_logp[i, t]) - float(old_logp[i, t]) for t in range(mask.shape[1])]
                            for i in range(mask.shape[0])])
    guided_on = weight > 0 and guided_logp is not None
    if method == "tgpo_adv" and guided_on:
        old_g = guided_logp if old_guided_logp is None else old_guided_logp
        out["tipo_bonus"] = agg(lambda i, t: weight * math.exp(float(old_g[i, t])), mask, mean)
        adv = torch.tensor([[float(advantages[i]) + weight * math.exp(float(old_g[i, t])) for t in range(mask.shape[1])]
                            for i in range(mask.shape[0])])

    def clipped(i, t):
        a = float(adv[i]) if adv.dim() == 1 else float(adv[i, t])
        rho = math.exp(float(logp[i, t]) - float(old_logp[i, t]))
        return float((a > 0 and rho > 1 + high) or (a < 0 and rho < 1 - clip_eps))

    def side(sign):  # clipped below (A < 0) or above (A > 0)
        return lambda i, t: clipped(i, t) * float(sign * (float(adv[i]) if adv.dim() == 1 else float(adv[i, t])) > 0)

    def per_row(f):  # per-sequence share (NaN for an empty row), as TRL's clip_ratio/low_min and high_max read it
        rows = []
        for i in range(mask.shape[0]):
            ts = [t for t in range(mask.shape[1]) if mask[i, t]]
            rows.append(sum(f(i, t) for t in ts) / len(ts) if ts else float("nan"))
        return torch.tensor(rows, dtype=torch.float64)

    out["clip_ratio/region_mean"] = agg(clipped, mask, mean)
    out["clip_ratio/low_mean"] = agg(side(-1), mask, mean)
    out["clip_ratio/high_mean"] = agg(side(1), mask, mean)
    out["clip_ratio/low_min"] = per_row(side(-1))
    out["clip_ratio/high_max"] = per_row(side(1))
    if method == "tgpo" and guided_on:
        out["guidance_loss"] = agg(lambda i, t: -float(guided_logp[i, t]), mask, mean)
    if method in ("rkl", "kdrl", "kdrl_reference", "kdrl_authors"):
        out["teacher/kl_k1"] = agg(lambda i, t: float(logp[i, t]) - float(teacher_logp[i, t]), mask, mean)
    return out
