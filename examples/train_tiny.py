"""Watch a tiny student learn: the lab's student, trained with GRPO and TGPO-Reg under the cross-family teacher, with
the training reward printed as it rises.

Everything is local: the lab's models ship with the package (``tgpo/lab/zoo``), its data is generated. The run is
``examples/lab_tgpo.yaml`` (Table 1's lab recipe: 64 prompts x 8 rollouts per step, lr 6e-5) read through the same
Python API as ``tgpo train``. On one CPU thread a method takes about two minutes for 125 steps; the reward (the
share of correct rollouts) climbs from about 0.25-0.30 to about 0.40 (results/lab/table1_curves.png shows the same
runs' curves). Run with::

    OMP_NUM_THREADS=1 python examples/train_tiny.py [--methods grpo tgpo] [--steps 125] [--every 25]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from transformers import PrinterCallback, TrainerCallback

from tgpo.lab.world import write_jsonl
from tgpo.run_config import load_run_config
from tgpo.train_cli import build_trainer

CONFIG = Path(__file__).resolve().parent / "lab_tgpo.yaml"
PROMPTS_PER_STEP = 64  # the config's 512 completions per step / 8 rollouts


class RewardPrinter(TrainerCallback):
    """One short line per ``every`` steps instead of the trainer's full log dictionaries."""

    def __init__(self, every: int):
        self.every = every

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "reward" in logs and state.global_step % self.every == 0:
            print(f"  step {state.global_step:4d}  training reward {logs['reward']:.3f}", flush=True)


def train(method: str, steps: int, data: Path, work: Path) -> list[float]:
    """Train one method; the training reward of every step."""
    run = load_run_config(CONFIG, [f"dataset.path={data}", f"trainer.method={method}", f"trainer.max_steps={steps}",
                                   f"trainer.output_dir={work / method}", "trainer.disable_tqdm=true"])
    if method == "grpo":
        run.teacher_model = None  # GRPO reads no teacher
    trainer = build_trainer(run)
    trainer.remove_callback(PrinterCallback)  # the full log dictionaries; RewardPrinter says what matters here
    trainer.add_callback(RewardPrinter(every=5))
    print(f"{method}: training {steps} steps of 64 prompts x 8 rollouts")
    trainer.train()
    return [h["reward"] for h in trainer.state.log_history if "reward" in h]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["grpo", "tgpo"], help="methods to train, in turn")
    parser.add_argument("--steps", type=int, default=125, help="optimizer steps per method")
    parser.add_argument("--every", type=int, default=25, help="print the mean reward of each block of this many steps")
    cli = parser.parse_args()
    torch.set_num_threads(1)

    work = Path(tempfile.mkdtemp(prefix="tgpo-tiny-"))
    data = work / "lab_train.jsonl"
    write_jsonl(data, "rl_train", n=cli.steps * PROMPTS_PER_STEP, seed=0)
    for method in cli.methods:
        rewards = train(method, cli.steps, data, work)
        blocks = [rewards[i:i + cli.every] for i in range(0, len(rewards), cli.every)]
        print(f"{method}: training reward, mean per {cli.every} steps")
        for i, block in enumerate(blocks):
            first = i * cli.every + 1
            bar = "#" * round(40 * statistics.mean(block))
            print(f"  steps {first:4d}-{first + len(block) - 1:<4d} {statistics.mean(block):.3f} {bar}")
        print(f"  rise: {statistics.mean(blocks[-1]) - statistics.mean(blocks[0]):+.3f} (last block - first block)")


if __name__ == "__main__":
    main()
