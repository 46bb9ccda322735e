"""One optimizer update of every given method on fixed rollouts, as one process or under ``accelerate launch``.

    python tests/mp_first_update.py OUT_DIR STUDENT TEACHER METHOD [METHOD ...]
    accelerate launch --multi_gpu --num_processes 2 tests/mp_first_update.py OUT_DIR ...

The global batch (16 completions = 4 prompts x 4) is the same whatever the number of processes: each process
takes ``16 / world_size`` rows. Completions come from :func:`fixed_rollouts` (TRL's ``rollout_func`` hook), a pure
function of the prompt and the rollout's index in its group, so both layouts train on identical rollouts. Plain
SGD without clipping makes the parameter update proportional to the gradient, so a wrong normaliser shows up
(Adam's first step would hide a constant factor). Process 0 writes ``OUT_DIR/<method>.json``: the parameter update
and the logged metrics.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"  # rollout_func is a TRL "experimental" hook

GLOBAL_BATCH, GROUP = 16, 4


def fixed_rollouts(tokenizer):
    """A ``rollout_func`` whose completions (random token ids and EOS) depend only on the prompt and the index of
    the rollout within its prompt's group."""
    import torch

    def rollout(prompts, trainer):
        seen: dict[str, int] = {}
        prompt_ids, completion_ids = [], []
        for prompt in prompts:
            text = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)
            k = seen[text] = seen.get(text, -1) + 1
            gen = torch.Generator().manual_seed(int(hashlib.sha1(f"{text}|{k}".encode()).hexdigest()[:8], 16))
            n = int(torch.randint(3, 11, (1,), generator=gen))
            completion = torch.randint(5, len(tokenizer), (n,), generator=gen).tolist() + [tokenizer.eos_token_id]
            prompt_ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
            completion_ids.append(completion)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}

    return rollout


def length_parity(completions, **kwargs):
    """A reward that varies inside groups, so every advantage term is exercised."""
    return [float(len(c) % 2) for c in completions]


def first_update(out_dir: str, student: str, teacher: str, method: str) -> None:
    import torch
    from datasets import Dataset

    from tgpo import TGPOConfig, TGPOTrainer
    from tgpo.teacher import load_tokenizer

    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rows = [{"prompt": f"{i}+{i + 1}=", "answer": str(2 * i + 1), "teacher_completion": f"\\boxed{{{2 * i + 1}}}"}
            for i in range(8)]
    args = TGPOConfig(
        output_dir=os.path.join(out_dir, f"run-{method}-{world}"), method=method, use_cpu=True, bf16=False,
        activation_checkpointing=False, per_device_train_batch_size=GLOBAL_BATCH // world, num_generations=GROUP,
        max_completion_length=12, max_steps=1, logging_steps=1, learning_rate=0.1, optim="sgd", max_grad_norm=1e9,
        lr_scheduler_type="constant", guidance_weight=0.5, guidance_decay=0.1, report_to="none", save_strategy="no",
        seed=0, disable_tqdm=True,
    )
    trainer = TGPOTrainer(student, reward_funcs=[length_parity], args=args, train_dataset=Dataset.from_list(rows),
                          teacher_model=teacher, rollout_func=fixed_rollouts(load_tokenizer(student)))
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        update = {k: (v.detach() - before[k]).flatten().tolist() for k, v in model.named_parameters()}
        logs = [h for h in trainer.state.log_history if "loss" in h]
        with open(os.path.join(out_dir, f"{method}.json"), "w") as fh:
            json.dump({"world_size": world, "update": update, "logs": logs}, fh)


if __name__ == "__main__":
    out, student_dir, teacher_dir, *methods = sys.argv[1:]
    for m in methods:
        first_update(out, student_dir, teacher_dir, m)
