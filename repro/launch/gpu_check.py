"""One short GPU check (repro/launch/gpu_check.sh) of the local teacher pass and of a few training steps on CUDA.

1. The teacher pass at the paper's length (1,024 + 8,192 positions), V = 152,064, a bf16 Qwen2 teacher of hidden 256
   and 2 layers, per row chunk (1, 2, 4 rows, head tiles of 512 positions; and 1 row without position tiles):
   ``torch.cuda.max_memory_allocated`` over the baseline, beside ``tgpo.teacher.teacher_pass_peak_bytes``.
2. One decoder layer of the paper's teacher (Qwen3-30B-A3B) in bf16: activation bytes per position on CUDA (its
   experts kernels may differ from the CPU's), beside the formula's layer term.
3. Position-chunked against row-chunked teacher pass at 2,048 completion tokens, 8 rows: seconds and peak.
4. A few TGPO / TRL-GRPO steps with tiny models on CUDA.

Writes ``$OUT/gpu_check.json``; each part is independent (a failure is recorded and the next part runs).
``--quick`` runs parts 1-3 at short lengths, also on a CPU (a smoke test of this script).
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: the bench's probes (bench/)
from bench.probes import layer_probe, teacher_pass_probe  # noqa: E402
from tgpo.provenance import git_sha  # noqa: E402
from tgpo.testing import build_tokenizer, save_model  # noqa: E402

OUT = Path(os.environ.get("OUT", "."))
QUICK = "--quick" in sys.argv
CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
V = 152064
P, T, T_CMP = (64, 512, 256) if QUICK else (1024, 8192, 2048)
result = {"device": torch.cuda.get_device_name(0) if CUDA else "cpu", "torch": torch.__version__, "git_sha": git_sha(),
          "quick": QUICK}


def save():
    (OUT / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))


def _free():
    if CUDA:
        torch.cuda.empty_cache()


def teacher_memory():
    common = dict(prompt_len=P, completion_len=T, vocab_size=V, hidden=256, layers=2, dtype="bfloat16", device=DEVICE,
                  padded=True, repeats=2)
    cases = []
    for rows, tokens in ((1, 512), (2, 512), (4, 512), (1, None)):
        m = teacher_pass_probe(rows=rows, variants=[(rows, tokens)], **common)[0]
        cases.append({"rows": rows, **m})
        print("teacher pass", cases[-1], flush=True)
        _free()
    result["teacher_memory_paper_length"] = {"prompt": P, "completion": T, "vocab": V, "chunk_tokens": 512,
                                             "cases": cases}


def paper_layer():
    from tgpo.plan import KNOWN_MODELS

    cfg = {k: v for k, v in KNOWN_MODELS["Qwen/Qwen3-30B-A3B-Thinking-2507"].items()
           if k not in ("architectures", "tokenizer")}
    result["paper_teacher_layer"] = layer_probe(cfg, positions=256 if QUICK else 4096, dtype="bfloat16", device=DEVICE)
    print("layer", result["paper_teacher_layer"], flush=True)
    _free()


def position_vs_row():
    names = ("row_chunked_rows1", "position_chunked_rows1_tokens512", "position_chunked_rows4_tokens512")
    res = teacher_pass_probe(rows=2 if QUICK else 8, variants=[(1, None), (1, 512), (4, 512)], prompt_len=16,
                             completion_len=T_CMP, vocab_size=V, hidden=256, layers=2, dtype="bfloat16",
                             device=DEVICE, padded=True, repeats=5)
    result["position_vs_row"] = dict(zip(names, res))
    print(result["position_vs_row"], flush=True)
    _free()


def steps():
    import tempfile

    from datasets import Dataset
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
        _free()
    result["steps_16x8_64tok_hidden256_4layers"] = out


if __name__ == "__main__":
    for part in (teacher_memory, paper_layer, position_vs_row, steps):
        if part is steps and not CUDA:
            continue
        t0 = time.time()
        try:
            part()
        except Exception:
            result[f"{part.__name__}_error"] = traceback.format_exc()[-3000:]
            print(result[f"{part.__name__}_error"], flush=True)
        result[f"{part.__name__}_wall_s"] = time.time() - t0
        save()
