"""Golden regression values of every objective: loss and gradient norm on fixed seeded inputs, computed through
the registry (``method_loss``, the path training runs).

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
        zero_adv, no_entropy = torch.zeros_like(adv), torch.zeros_like(logp)
        entropy = obj.entropy_from_logits(z)

        def loss(method, how=None, cfg=None, **x):
            """Every value goes through the registry (the trained path); single terms with the others exactly 0."""
            how, cfg = how or obj.Aggregation(), cfg or obj.LossConfig(entropy_coef=0.0)
            x = {"logp": logp, "old_logp": old, "advantages": adv, "mask": mask, "entropy": no_entropy, **x}
            return obj.method_loss(method, obj.LossInputs(aggregation=how, **x), cfg)

        def kl(estimator):  # KDRL's penalty alone: advantages 0 make the policy-gradient term exactly 0
            return loss("kdrl", cfg=obj.LossConfig(entropy_coef=0.0, kdrl_estimator=estimator), advantages=zero_adv,
                        teacher_logp=teacher_logp).loss

        return {
            "grpo": loss("grpo").loss,
            "tgpo": loss("tgpo", guided_logp=guided, guidance_weight=obj.guidance_weight(1, initial=0.05)).loss,
            "guidance": loss("tgpo", guided_logp=guided, guidance_weight=1.0).terms["guidance"],
            "rkl": loss("rkl", teacher_logp=teacher_logp).loss,
            "kdrl_k1": kl("k1"),
            "kdrl_k2": kl("k2"),
            "kdrl_k3": kl("k3"),
            "kdrl_reference": loss("kdrl_authors", advantages=zero_adv, teacher_logp=teacher_logp).loss,
            "entropy": loss("grpo", cfg=obj.LossConfig(), advantages=zero_adv, entropy=entropy).loss,
            # the mean over the B x T padded positions, i.e. dr_grpo's sum over rows x padded length (T = 9)
            "luffy": loss("luffy", obj.Aggregation("dr_grpo", padded_length=9), off_policy=off_policy).loss,
            # added with the method registry (TGPO-Adv, aggregations, reward scaling, asymmetric clipping)
            "tgpo_adv": loss("tgpo_adv", guided_logp=guided.detach(), guidance_weight=0.05).loss,
            "grpo_unscaled_dr_grpo_sum": loss(
                "grpo", obj.Aggregation("dr_grpo", padded_length=9, row_mean=False),
                advantages=obj.group_advantages(rewards, 4, scale="none")).loss,
            "grpo_seq_mean_asymmetric_clip": loss(
                "grpo", obj.Aggregation("grpo"), obj.LossConfig(clip_eps_high=0.28, delta=3.0, entropy_coef=0.0)).loss,
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
