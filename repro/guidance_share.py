"""Where a guided run's guidance gradient goes, by position class of the lab's grammar (:mod:`tgpo.lab.positions`).

The trainer logs ``guidance/grad_share = ||grad_h guidance|| / ||grad_h pg||`` at the student's final hidden states
``h`` (:meth:`tgpo.trainer.TGPOTrainer._gradient_share`). The rows of ``h`` are separate positions, so a gradient's
squared norm there is the sum of its per-position squared norms, and the share of a set of positions ``c`` is

    share(c) = sum over positions p in c of ||grad_h[p]||^2 / ||grad_h||^2.

:class:`GuidanceShareProbe` attaches to a :class:`~tgpo.trainer.TGPOTrainer` and, at chosen optimizer steps, keeps
the per-position squared norms of both terms' gradients (the trainer's own ``guidance`` and ``pg`` loss terms, on
that step's batch) with each completion token's class; :func:`class_shares` turns them into shares per class with
95% intervals clustered by prompt. ``python -m repro.regime`` drives it (its docstring: the measurement's setting).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from repro import stats

#: Class name of a completion position the loss does not read (after EOS: padding).
MASKED = ""


def position_norms(term: torch.Tensor, hidden: torch.Tensor, completion_length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(per_position [B, T], per_row [B])``: squared norms of ``grad_hidden term`` at the ``T`` positions that
    predict the completion's tokens (``hidden[:, -T-1:-1]``, as the trainer slices it), and summed over *every* position
    of each row (``hidden`` ``[B, P+T, d]``; positions outside the slice have a zero gradient unless a term reads them,
    so ``per_position.sum(1) == per_row`` checks the slice). Float64; zeros when ``term`` does not read ``hidden``."""
    (grad,) = torch.autograd.grad(term, hidden, retain_graph=True, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(hidden)
    sq = grad.detach().double().pow(2).sum(-1)
    T = completion_length
    return sq[:, -T - 1 : -1].cpu().numpy(), sq.sum(1).cpu().numpy()


def selectors() -> dict[str, tuple[str, ...]]:
    """``all``, every group and every class of :mod:`tgpo.lab.positions` -> the classes it holds."""
    from tgpo.lab.positions import CLASSES, GROUPS

    return {"all": CLASSES, **GROUPS, **{c: (c,) for c in CLASSES}}


def _percent(interval: stats.Interval, n: int) -> stats.Interval:
    return replace(interval, mean=100 * interval.mean, half=100 * interval.half, se=100 * interval.se, n=n)


def class_shares(per_position: np.ndarray, per_row: np.ndarray, classes: np.ndarray,
                 clusters: np.ndarray) -> dict[str, stats.Interval]:
    """Per selector (:func:`selectors`) with positions in ``classes``: the share (%) of the squared gradient norm at
    its positions, ``sum per_position[in class] / sum per_row``, with a 95% interval clustered by ``clusters``.

    ``per_position`` ``[N, T]`` and ``per_row`` ``[N]`` come from :func:`position_norms` (rows of several micro-batches
    stacked); ``classes`` ``[N, T]`` holds each position's class (:data:`MASKED` where the loss reads none);
    ``clusters`` ``[N]`` a row's prompt (0..K-1), the unit of independent sampling. ``n``: positions in the class.
    """
    k = int(clusters.max()) + 1
    den = np.bincount(clusters, weights=per_row, minlength=k)
    out = {}
    for name, members in selectors().items():
        inside = np.isin(classes, members)
        if inside.any():
            num = np.bincount(clusters, weights=(per_position * inside).sum(1), minlength=k)
            out[name] = _percent(stats.cluster_ratio_interval(num, den), int(inside.sum()))
    return out


def position_shares(classes: np.ndarray, clusters: np.ndarray) -> dict[str, stats.Interval]:
    """Per selector: the share (%) of the read positions that it holds (what a gradient spread evenly would give)."""
    read = (classes != MASKED).astype(float)
    return class_shares(read, read.sum(1), classes, clusters)


class GuidanceShareProbe:
    """Keeps, at optimizer steps ``steps`` of ``trainer`` (a :class:`~tgpo.trainer.TGPOTrainer` of a guided method
    with ``log_guidance_share`` on and ``guidance_share_every=1``), both loss terms' per-position gradient norms at
    the final hidden states, measured on that step's batch and the policy that takes the step (after ``step - 1``
    updates), in :attr:`batches`: one dict per micro-batch, ``{step, guidance_weight, logged_share, prompts [B]
    (prompt-id tuples), classes [B, T], guidance, pg ([B, T]), guidance_row, pg_row ([B])}``.

    It wraps two of the trainer's methods on this instance only: ``_loss_inputs`` (to see the micro-batch's completion
    ids and mask) and ``_gradient_share``, which the trainer calls with its own ``guidance`` and ``pg`` terms and the
    hidden states they read; the wrapped one returns the trainer's own value, so the logs are unchanged.
    """

    def __init__(self, trainer, steps):
        self.trainer, self.steps = trainer, frozenset(steps)
        self.batches: list[dict] = []
        self._inputs = None
        loss_inputs, gradient_share = trainer._loss_inputs, trainer._gradient_share

        def remembering_inputs(model, inputs):
            x, hidden = loss_inputs(model, inputs)
            self._inputs = (inputs["prompt_ids"], inputs["completion_ids"], x.mask)
            return x, hidden

        def measuring_share(term, reference, hidden):
            value = gradient_share(term, reference, hidden)
            step = trainer.state.global_step + 1  # the step being computed (the trainer's log names it so)
            if step in self.steps:
                self.batches.append(self._measure(step, term, reference, hidden, value))
            return value

        trainer._loss_inputs, trainer._gradient_share = remembering_inputs, measuring_share

    def _measure(self, step: int, term, reference, hidden, logged: float) -> dict:
        from tgpo.lab.positions import position_classes

        prompt_ids, completion_ids, mask = self._inputs
        T = completion_ids.size(1)
        guidance, guidance_row = position_norms(term, hidden, T)
        pg, pg_row = position_norms(reference, hidden, T)
        tok = self.trainer.processing_class
        classes = np.full((len(completion_ids), T), MASKED, dtype=object)
        for i, (ids, read) in enumerate(zip(completion_ids.tolist(), mask.bool().tolist())):
            length = max((t + 1 for t, r in enumerate(read) if r), default=0)
            labels = position_classes(tok.convert_ids_to_tokens(ids[:length]))
            classes[i, :length] = [c if r else MASKED for c, r in zip(labels, read)]
        return {"step": step, "guidance_weight": self.trainer.current_guidance_weight, "logged_share": logged,
                "prompts": [tuple(p) for p in prompt_ids.tolist()], "classes": classes, "guidance": guidance,
                "pg": pg, "guidance_row": guidance_row, "pg_row": pg_row}


def step_statistics(batches: list[dict]) -> dict:
    """One step's micro-batches (:attr:`GuidanceShareProbe.batches` of one step) combined: ``{step,
    guidance_weight, positions, norm_ratio, guidance, pg, share_of_positions}``; ``norm_ratio`` is
    ``||grad_h guidance|| / ||grad_h pg||`` over the whole step's batch, the last three map each selector to an
    interval (:func:`class_shares`, :func:`position_shares`)."""
    prompts = [p for b in batches for p in b["prompts"]]
    index = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
    clusters = np.array([index[p] for p in prompts])
    stacked = {k: np.concatenate([b[k] for b in batches]) for k in ("classes", "guidance", "pg", "guidance_row", "pg_row")}
    classes = stacked["classes"]
    pg_total = stacked["pg_row"].sum()
    return {"step": batches[0]["step"], "guidance_weight": batches[0]["guidance_weight"],
            "positions": int((classes != MASKED).sum()),
            "norm_ratio": float(np.sqrt(stacked["guidance_row"].sum() / pg_total)) if pg_total > 0 else float("inf"),
            "guidance": class_shares(stacked["guidance"], stacked["guidance_row"], classes, clusters),
            "pg": class_shares(stacked["pg"], stacked["pg_row"], classes, clusters),
            "share_of_positions": position_shares(classes, clusters)}
