"""Golden regression values of every objective: loss and gradient norm on fixed seeded inputs.

Regenerate on purpose (after a deliberate change to ``tgpo/objectives.py``) with::

    python tests/golden_values.py --write

and commit ``tests/golden/objectives.json`` with a message explaining why the numbers moved.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tgpo import objectives as obj

GOLDEN_FILE = Path(__file__).parent / "golden" / "objectives.json"


def fixed_inputs(seed: int = 1234, batch: int = 4, length: int = 9, vocab: int = 13):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab, generator=gen, dtype=torch.float64) * 2
    sampled = torch.randint(0, vocab, (batch, length), generator=gen)
    teacher_argmax = torch.randint(0, vocab, (batch, length), generator=gen)
    mask = torch.arange(length).unsqueeze(0) < torch.tensor([[9], [7], [4], [1]])
    old_shift = torch.randn(batch, length, generator=gen, dtype=torch.float64) * 0.3
    teacher_logp = -torch.rand(batch, length, generator=gen, dtype=torch.float64) * 30
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    return logits, sampled, teacher_argmax, mask, old_shift, teacher_logp, rewards


def compute() -> dict[str, dict[str, float]]:
    """``{method: {"loss": value, "grad_norm": norm of d loss / d logits}}`` for every objective."""
    logits, sampled, yT, mask, old_shift, teacher_logp, rewards = fixed_inputs()
    off_policy = torch.tensor([False, False, False, True])

    def terms(z):
        logp_all = torch.log_softmax(z, -1)
        logp = logp_all.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        guided = logp_all.gather(-1, yT.unsqueeze(-1)).squeeze(-1)
        old = logp.detach() + old_shift
        adv = obj.group_advantages(rewards, group_size=4)
        entropy = obj.entropy_from_logits(z)
        return {
            "grpo": obj.policy_loss(logp, old, adv, mask),
            "tgpo": obj.tgpo_loss(logp, old, adv, guided, mask, weight=obj.guidance_weight(1, initial=0.05)),
            "guidance": obj.guidance_loss(guided, mask),
            "rkl": obj.policy_loss(logp, old, obj.rkl_advantages(teacher_logp, old, mask), mask),
            "kdrl_k1": obj.kdrl_penalty(logp, teacher_logp, mask, estimator="k1"),
            "kdrl_k2": obj.kdrl_penalty(logp, teacher_logp, mask, estimator="k2"),
            "kdrl_k3": obj.kdrl_penalty(logp, teacher_logp, mask, estimator="k3"),
            "kdrl_reference": obj.kdrl_reference_penalty(logp, teacher_logp, mask),
            "entropy": obj.entropy_bonus(entropy, mask),
            "luffy": obj.luffy_loss(logp, old, adv, mask, off_policy),
            # added with the method registry (TGPO-Adv, aggregations, reward scaling, asymmetric clipping)
            "tgpo_adv": obj.policy_loss(logp, old, obj.tipo_advantages(adv, guided.detach(), mask, 0.05), mask),
            "grpo_unscaled_dr_grpo_sum": obj.aggregate(
                obj.surrogate(logp, old, obj.group_advantages(rewards, 4, scale="none"), mask)[0], mask,
                obj.Aggregation("dr_grpo", padded_length=9, row_mean=False)),
            "grpo_seq_mean_asymmetric_clip": obj.aggregate(
                obj.surrogate(logp, old, adv, mask, 0.2, 0.28, 3.0)[0], mask, obj.Aggregation("grpo")),
        }

    out = {}
    for name in terms(logits):
        z = logits.clone().requires_grad_(True)
        loss = terms(z)[name]
        (grad,) = torch.autograd.grad(loss, z)
        out[name] = {"loss": loss.item(), "grad_norm": grad.norm().item()}
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"overwrite {GOLDEN_FILE}")
    args = parser.parse_args()
    values = compute()
    text = json.dumps(values, indent=2, sort_keys=True) + "\n"
    if args.write:
        GOLDEN_FILE.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN_FILE.write_text(text)
        print(f"wrote {GOLDEN_FILE}")
    else:
        print(text)
