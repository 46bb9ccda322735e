"""Train a tiny student with every method, as a new user would, and print seconds per step.

Builds a tiny character-level tokenizer, a Qwen2 student and a same-size teacher from configs (nothing from the
Hub; the builders are ``tgpo.testing``'s), then trains each method with ``TGPOTrainer`` for a few steps on CPU.
Run with::

    OMP_NUM_THREADS=1 python examples/train_tiny.py [--steps 5]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import torch
from datasets import Dataset

from tgpo import TGPOConfig, TGPOTrainer
from tgpo.objectives import METHODS
from tgpo.testing import build_model, build_tokenizer


def tiny_model(tokenizer, seed: int):
    """A Qwen2 of hidden 64 and 2 layers over ``tokenizer`` (random weights: an untrained stand-in)."""
    return build_model(tokenizer, hidden=64, layers=2, seed=seed, max_positions=256)


def arithmetic_dataset(n: int = 64) -> Dataset:
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append({"prompt": f"{a}+{b}=", "answer": str(a + b), "teacher_completion": f"\\boxed{{{a + b}}}"})
    return Dataset.from_list(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=16, help="prompts per step")
    parser.add_argument("--generations", type=int, default=8, help="rollouts per prompt")
    cli = parser.parse_args()
    torch.set_num_threads(1)

    work = Path(tempfile.mkdtemp(prefix="tgpo-tiny-"))
    tokenizer = build_tokenizer(chat_template=False)
    teacher = tiny_model(tokenizer, seed=1)  # same size as the student (an untrained stand-in)
    dataset = arithmetic_dataset()
    seconds = {}
    for method in METHODS:
        args = TGPOConfig(
            output_dir=str(work / method), method=method, max_steps=cli.steps, learning_rate=1e-4,
            per_device_train_batch_size=cli.prompts * cli.generations, num_generations=cli.generations,
            max_completion_length=24, logging_steps=1, save_strategy="no", report_to="none",
            use_cpu=True, bf16=False, activation_checkpointing=False, guidance_weight=0.05,
        )
        trainer = TGPOTrainer(tiny_model(tokenizer, seed=0), args=args, train_dataset=dataset,
                              processing_class=tokenizer, teacher_model=teacher, teacher_processing_class=tokenizer)
        trainer.train()
        steps = [h for h in trainer.state.log_history if "step_time" in h]
        seconds[method] = sum(h["step_time"] for h in steps[1:]) / max(len(steps) - 1, 1)  # step 1 warms up
        last = steps[-1]
        print(f"{method}: reward {last['reward']:.3f}, entropy {last['entropy']:.3f}, grad_norm {last['grad_norm']:.3f}")
    print(f"\nseconds per step ({cli.prompts} prompts x {cli.generations} rollouts, steps 2..{cli.steps}, "
          f"{torch.get_num_threads()} thread):")
    for method, s in seconds.items():
        print(f"  {method:15s} {s:.3f}")


if __name__ == "__main__":
    main()
