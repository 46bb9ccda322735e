"""The student's log-prob of a second target (the teacher's token) from the same fused head pass as the sampled one.

TRL's fused LM head gives ``lp[n] = z[n, y_n] - logZ_n`` without ever holding the ``[N, V]`` logits. The student's
log-prob of the teacher's token ``yT_n`` shares the log-sum-exp ``logZ_n``, so

    lp_g[n] = lp[n] + (z[n, yT_n] - z[n, y_n])

where ``z = transform(h @ W.T + b)`` (TRL's logit transform: optional soft cap, then ``/ temperature``). The gap
needs two rows of the head per position (``O(N x H)``), not the vocabulary, and its gradient flows into ``lp``'s
gradient, which TRL's head backward already computes: no second head pass, no second backward through the head
(docs/method.md §2).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["logit_gap", "second_target_logps"]

#: Positions per slice of :class:`_LogitGap` (two ``[chunk, H]`` gathers of the head's rows at a time).
GAP_CHUNK = 4096


def _transform(raw: Tensor, inv_t: float, softcap: float | None) -> Tensor:
    return (raw if softcap is None else softcap * torch.tanh(raw / softcap)) * inv_t


class _LogitGap(torch.autograd.Function):
    """``z[n, a_n] - z[n, b_n]`` in float32, computed and differentiated in slices of positions."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, a, b, inv_t, softcap):
        out = torch.empty(hidden.size(0), dtype=torch.float32, device=hidden.device)
        for s in range(0, hidden.size(0), GAP_CHUNK):
            h = hidden[s : s + GAP_CHUNK].float()
            za, zb = (_transform(_raw(h, weight, bias, t[s : s + GAP_CHUNK]), inv_t, softcap) for t in (a, b))
            out[s : s + GAP_CHUNK] = za - zb
        ctx.save_for_backward(hidden, weight, bias, a, b)
        ctx.inv_t, ctx.softcap = inv_t, softcap
        return out

    @staticmethod
    def backward(ctx, grad):
        hidden, weight, bias, a, b = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.zeros_like(hidden, dtype=torch.float32) if need_h else None
        rows, w_values, b_values = [], [], []
        for s in range(0, hidden.size(0), GAP_CHUNK):
            h, g = hidden[s : s + GAP_CHUNK].float(), grad[s : s + GAP_CHUNK].float()
            for t, sign in ((a[s : s + GAP_CHUNK], 1.0), (b[s : s + GAP_CHUNK], -1.0)):
                raw = _raw(h, weight, bias, t)
                dz = g * ctx.inv_t * sign  # d out / d z, then through the soft cap: 1 - tanh^2
                if ctx.softcap is not None:
                    dz = dz * (1 - torch.tanh(raw / ctx.softcap) ** 2)
                if need_h:
                    grad_h[s : s + GAP_CHUNK] += dz[:, None] * weight[t].float()
                rows.append(t)
                w_values.append((dz[:, None] * h).to(weight.dtype) if need_w else None)
                b_values.append(dz if need_b else None)
        # The head's gradient touches 2 rows per position: a sparse gradient (as nn.Embedding(sparse=True) gives),
        # which autograd adds to the fused head's dense one; a dense [V, H] buffer would cost O(V x H) per step.
        index = torch.cat(rows)[None]
        grad_w = torch.sparse_coo_tensor(index, torch.cat(w_values), weight.shape) if need_w else None
        grad_b = torch.sparse_coo_tensor(index, torch.cat(b_values).to(bias.dtype), bias.shape) if need_b else None
        return (None if grad_h is None else grad_h.to(hidden.dtype), grad_w, grad_b, None, None, None, None)


def _raw(h: Tensor, weight: Tensor, bias: Tensor | None, t: Tensor) -> Tensor:
    raw = (h * weight[t].float()).sum(-1)
    return raw if bias is None else raw + bias[t].float()


def logit_gap(hidden: Tensor, weight: Tensor, bias: Tensor | None, a: Tensor, b: Tensor, temperature: float = 1.0,
              softcap: float | None = None) -> Tensor:
    """``z[n, a_n] - z[n, b_n]`` for ``z = transform(hidden @ weight.T + bias)``, float32, differentiable.

    Args:
        hidden: ``[N, H]`` final hidden states. weight, bias: the output head (``[V, H]``, ``[V]`` or None).
        a, b: ``[N]`` long target ids. temperature, softcap: TRL's logit transform.
    Returns: ``[N]`` float32.
    """
    return _LogitGap.apply(hidden, weight, bias, a, b, 1.0 / temperature, softcap)


def second_target_logps(logps: Tensor, hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                        sampled: Tensor, temperature: float = 1.0, softcap: float | None = None) -> Tensor:
    """The log-prob of ``targets`` from the log-prob ``logps`` of ``sampled`` under the same distribution.

    Args:
        logps: ``[B, T]`` ``log softmax(z)[sampled]`` (TRL's fused head), with or without gradient.
        hidden: ``[B, T, H]`` the hidden states that produced them (position ``t`` predicts completion token ``t``).
        targets, sampled: ``[B, T]`` long.
    Returns: ``[B, T]`` ``log softmax(z)[targets]`` (float32), whose gradient reaches the head only through
    ``logps`` and two rows of ``weight`` per position.
    """
    gap = logit_gap(hidden.reshape(-1, hidden.size(-1)), weight, bias, targets.reshape(-1), sampled.reshape(-1),
                    temperature, softcap)
    return logps.float() + gap.view(targets.shape)
