"""Training-time guards: a run that has gone numerically wrong stops, naming the step, before it writes anything
that looks complete; a resumed run continues a sensible learning-rate schedule (docs/architecture.md, "Run
directories").

* :func:`nonfinite_parameters` — checked before a checkpoint or a final model is marked complete;
* :class:`NumericGuard` — a non-finite gradient stops the run before the update, non-finite parameters after one;
  a gradient norm of exactly 0 for :data:`ZERO_GRAD_STEPS` logged steps in a row warns (nothing is learning);
* :class:`ContinueSchedule` — after ``--resume`` with a longer ``max_steps`` (or ``--allow-changes`` to the
  learning rate) the optimizer's learning rate is recomputed from the schedule of *this* run at the resumed step,
  instead of going on from the value the old schedule had reached (0.0 at the old end of a linear decay).

Every stop is a :class:`FloatingPointError` whose message is the one line ``tgpo train`` prints (exit code 2).
"""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

__all__ = ["ZERO_GRAD_STEPS", "ContinueSchedule", "NumericGuard", "nonfinite_parameters"]

#: Logged steps in a row with a gradient norm of exactly 0 before the run warns.
ZERO_GRAD_STEPS = 3


def _first_nonfinite(named_tensors) -> tuple[str, int] | None:
    """``(name, number of non-finite values)`` of the first tensor holding any, else None (one device sync).

    In a multi-process run every process gets the same answer (a sharded model may hold the bad values on one
    process only; the others must stop too rather than wait for it in the next collective): ``("a tensor on another
    process", 0)`` where the values are elsewhere."""
    named = [(n, t) for n, t in named_tensors if t is not None]
    finite = torch.stack([torch.isfinite(t).all() for _, t in named]) if named else torch.ones(1, dtype=torch.bool)
    bad = (~finite).any().to(torch.int32)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    if not bool(bad):
        return None
    if bool(finite.all()):
        return "a tensor on another process", 0
    name, tensor = named[int((~finite).nonzero()[0])]
    return name, int((~torch.isfinite(tensor)).sum())


def nonfinite_parameters(model) -> str | None:
    """None when every parameter of ``model`` is finite, else which one is not (``"lm_head.weight: 12 values"``)."""
    found = _first_nonfinite((n, p.detach()) for n, p in model.named_parameters())
    return None if found is None else f"{found[0]}: {found[1]} non-finite values"


class NumericGuard(TrainerCallback):
    """Stop on a non-finite gradient (before the update) or non-finite parameters (after it); warn when the gradient
    norm is exactly 0 for :data:`ZERO_GRAD_STEPS` logged steps in a row."""

    def __init__(self, zero_grad_steps: int = ZERO_GRAD_STEPS):
        self.zero_grad_steps = zero_grad_steps
        self._zero_run = 0

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        found = _first_nonfinite((n, p.grad) for n, p in model.named_parameters())
        if found is not None:
            raise FloatingPointError(
                f"non-finite gradient at step {state.global_step + 1} ({found[0]}: {found[1]} values); stopped "
                f"before the update, the last good checkpoint in {args.output_dir} is kept (lower learning_rate?)")

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        problem = nonfinite_parameters(model)
        if problem is not None:
            raise FloatingPointError(
                f"non-finite parameters after the update of step {state.global_step + 1} ({problem}); nothing of "
                f"this step is saved, the last good checkpoint in {args.output_dir} is kept (lower learning_rate?)")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "grad_norm" not in logs:
            return
        self._zero_run = self._zero_run + 1 if logs["grad_norm"] == 0.0 else 0
        if self._zero_run == self.zero_grad_steps:
            logger.warning("grad_norm has been exactly 0 for %d logged steps in a row (up to step %d): nothing is "
                           "learning (all rewards of each group equal? learning_rate too high?)",
                           self.zero_grad_steps, state.global_step)


class ContinueSchedule(TrainerCallback):
    """At the start of training, set the optimizer's learning rate to this run's schedule at the current step.

    A fresh run is unchanged (its scheduler already stands there). A resumed one restores the old run's optimizer
    and scheduler state: the learning rate the old schedule reached (0.0 at the end of a linear decay) and its base
    rate. Transformers' schedules are ``LambdaLR`` whose multiplier is built for *this* run's ``max_steps``, so the
    base rate is set to ``args.learning_rate`` and the rate recomputed at the resumed step (a custom optimizer whose groups have different rates keeps its
    base rates); another scheduler cannot
    be recomputed, which is said in a warning.
    """

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        if optimizer is None or lr_scheduler is None or state.global_step == 0:
            return
        if not isinstance(lr_scheduler, torch.optim.lr_scheduler.LambdaLR):
            logger.warning("resumed with a %s scheduler: its learning rate continues from the checkpoint's state and "
                           "cannot be fitted to a changed max_steps or learning_rate", type(lr_scheduler).__name__)
            return
        if len(set(lr_scheduler.base_lrs)) == 1:  # Trainer's optimizer: every group at args.learning_rate
            lr_scheduler.base_lrs = [args.learning_rate] * len(optimizer.param_groups)
        rates = [base * factor(lr_scheduler.last_epoch)
                 for base, factor in zip(lr_scheduler.base_lrs, lr_scheduler.lr_lambdas)]
        for group, base, rate in zip(optimizer.param_groups, lr_scheduler.base_lrs, rates):
            group["initial_lr"], group["lr"] = base, rate
        lr_scheduler._last_lr = rates
