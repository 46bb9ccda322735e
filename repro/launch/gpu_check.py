"""One short GPU check (repro/launch/gpu_check.sh): the teacher pass's peak memory, chunked vs naive, at a 152k
vocabulary (torch.cuda.max_memory_allocated), and a few TGPO / TRL-GRPO steps with tiny models on CUDA.
Writes $OUT/gpu_check.json; each part is independent (a missing package fails only its own part)."""

import json
import os
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
OUT = Path(os.environ.get("OUT", "."))
result = {}


def save():
    (OUT / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))


import torch  # noqa: E402

result["device"] = torch.cuda.get_device_name(0)
result["torch"] = torch.__version__


def teacher_memory():
    from tiny_models import build_model, build_tokenizer

    from tgpo.teacher import teacher_scores

    tok = build_tokenizer()
    B, P, T, V = 8, 16, 2048, 152064
    model = build_model(tok, hidden=256, layers=2, vocab_size=V).to("cuda", torch.bfloat16).eval()
    model.config.max_position_embeddings = 4096
    g = torch.Generator().manual_seed(0)
    args = (torch.randint(4, len(tok), (B, P), generator=g).cuda(), torch.ones(B, P, dtype=torch.long).cuda(),
            torch.randint(4, len(tok), (B, T), generator=g).cuda(), torch.ones(B, T, dtype=torch.long).cuda())
    out = {}
    for chunk in (None, 8, 4, 2, 1):
        for _rep in range(2):  # first: warm-up
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            teacher_scores(model, *args, student_vocab_size=len(tok), chunk_size=chunk)
            torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        out[f"chunk_{chunk or 'naive'}"] = {"peak_mib": (torch.cuda.max_memory_allocated() - base) / 2**20,
                                            "seconds": dt}
    out["ratio_chunk1_over_naive"] = out["chunk_1"]["peak_mib"] / out["chunk_naive"]["peak_mib"]
    out["ratio_chunk2_over_naive"] = out["chunk_2"]["peak_mib"] / out["chunk_naive"]["peak_mib"]
    result["teacher_memory_bf16_V152064_T2048_B8"] = out
    print(json.dumps(out, indent=1), flush=True)


def steps():
    import tempfile

    from datasets import Dataset
    from tiny_models import build_tokenizer, save_model
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from tgpo import TGPOConfig, TGPOTrainer

    class Timer(TrainerCallback):
        def __init__(self):
            self.t = []

        def on_step_begin(self, *a, **k):
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            torch.cuda.synchronize()
            self.t.append(time.perf_counter() - self.t0)

    tmp = Path(tempfile.mkdtemp())
    tok = build_tokenizer(chat_template=False)
    student = save_model(tmp / "s", tok, hidden=256, layers=4, seed=0)
    teacher = save_model(tmp / "t", tok, hidden=256, layers=4, seed=1)
    ds = Dataset.from_list([{"prompt": f"What is {i}+{i + 1}? ", "answer": str(2 * i + 1)} for i in range(64)])

    def reward(completions, **kw):
        return [float(len(c) % 2) for c in completions]

    common = dict(output_dir=str(tmp / "o"), bf16=True, per_device_train_batch_size=128, num_generations=8,
                  max_completion_length=64, max_steps=6, logging_steps=100, report_to="none", save_strategy="no",
                  learning_rate=1e-4, seed=0, disable_tqdm=True)
    out = {}
    for name in ("trl_grpo", "tgpo_grpo", "tgpo_tgpo", "tgpo_kdrl"):
        timer = Timer()
        if name == "trl_grpo":
            tr = GRPOTrainer(str(student), reward_funcs=[reward], args=GRPOConfig(**common), train_dataset=ds,
                             processing_class=tok, callbacks=[timer])
        else:
            method = name.split("_", 1)[1]
            tr = TGPOTrainer(str(student), reward_funcs=[reward], args=TGPOConfig(**common, method=method,
                             guidance_decay=0.0), train_dataset=ds, processing_class=tok,
                             teacher_model=str(teacher) if method != "grpo" else None, callbacks=[timer])
        torch.cuda.reset_peak_memory_stats()
        tr.train()
        t = sorted(timer.t[2:])
        out[name] = {"median_s": t[len(t) // 2], "steps": timer.t, "peak_mib": torch.cuda.max_memory_allocated() / 2**20,
                     "last_log": {k: v for k, v in tr.state.log_history[-1].items() if isinstance(v, (int, float))}}
        print(name, out[name]["median_s"], flush=True)
        del tr
        torch.cuda.empty_cache()
    result["steps_16x8_64tok_hidden256_4layers"] = out


for part in (teacher_memory, steps):
    t0 = time.time()
    try:
        part()
    except Exception:
        result[f"{part.__name__}_error"] = traceback.format_exc()[-3000:]
        print(result[f"{part.__name__}_error"], flush=True)
    result[f"{part.__name__}_wall_s"] = time.time() - t0
    save()
