"""What TGPO costs over GRPO, measured on CPU with tiny models: ``python repro/bench.py`` (or ``nox -s bench``).

Writes ``results/bench/``: ``bench.csv`` (every figure), ``bench.png``, ``manifest.json`` and ``README.md``.

1. **Seconds per optimizer step** of plain TRL ``GRPOTrainer`` and of ``TGPOTrainer`` for every method, on the same
   tiny student (16 prompts x 8 rollouts, 24 new tokens) with a same-size teacher and a ~4x (parameters) teacher;
   warm-up steps, then the median of timed steps. TGPO's guidance weight is held constant so every timed step runs
   the teacher pass (the worst case: the paper's schedule skips it after step 200).
2. **Where a TGPO step's time goes**: generation, rewards, teacher pass, the rest of TRL's scoring, the loss forward,
   and backward + optimizer.
3. **Teacher-pass peak memory**, chunked (``teacher_chunk_size`` rows per forward) against naive (the whole batch
   at once), with a teacher whose LM head is 152,064 wide (hidden 64) over 2,048 completion tokens, batch 8. Each
   measurement runs in a fresh subprocess (peak RSS over its baseline; an address-space limit keeps it from
   starving the machine). The naive pass at batch 8 needs ~20 GB, more than a shared 2-core box should spend, so
   it is measured at batch 1 and 2 and extrapolated linearly (its logits are linear in the batch); the GPU check
   (repro/launch/gpu_check.sh) measures it directly.
4. **Scorer throughput**: ``tgpo.scoring.math_correct_batch`` on boxed answers.

Goals (issue): TGPO <= 1.2x GRPO per step with a same-size teacher; chunked peak <= 25% of naive.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

OUT = REPO / "results" / "bench"
VOCAB_LARGE = 152064
METHODS = ("grpo", "tgpo", "rkl", "kdrl", "kdrl_reference", "luffy")
TEACHER_METHODS = ("tgpo", "rkl", "kdrl", "kdrl_reference")


# ------------------------------------------------------------------------------------------ step time
def _models(tmp: Path):
    from tiny_models import build_tokenizer, save_model

    tok = build_tokenizer(chat_template=False)
    paths = {
        "student": save_model(tmp / "student", tok, hidden=64, layers=2, seed=0),
        "same": save_model(tmp / "teacher_same", tok, hidden=64, layers=2, seed=1),
        "4x": save_model(tmp / "teacher_4x", tok, hidden=128, layers=2, seed=2),
    }
    return tok, paths


def _n_params(path) -> int:
    from transformers import AutoModelForCausalLM

    return sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(path).parameters())


def _dataset(n=64):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": f"What is {i}+{i + 1}? ", "answer": str(2 * i + 1),
                               "teacher_completion": f"\\boxed{{{2 * i + 1}}}"} for i in range(n)])


def parity_reward(completions, **kwargs):
    """Cheap, group-varying reward, so the timings measure the trainers rather than the grader."""
    return [float(len(c) % 2) for c in completions]


class _StepTimer:
    def __new__(cls):
        from transformers import TrainerCallback

        class Timer(TrainerCallback):
            def __init__(self):
                self.times, self._t0 = [], None

            def on_step_begin(self, args, state, control, **kw):
                self._t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                self.times.append(time.perf_counter() - self._t0)

        return Timer()


def _common_args(out: Path, steps: int) -> dict:
    return dict(output_dir=str(out), use_cpu=True, bf16=False, activation_checkpointing=False,
                per_device_train_batch_size=128, num_generations=8, max_completion_length=24, max_steps=steps,
                logging_steps=1000, learning_rate=1e-4, lr_scheduler_type="constant", report_to="none",
                save_strategy="no", seed=0, disable_tqdm=True)


def time_run(kind: str, method: str, teacher: str | None, paths: dict, tok, tmp: Path, warmup: int, timed: int,
             profile: bool = False) -> dict:
    """Median seconds per optimizer step (after ``warmup`` steps) of one trainer; optionally a phase profile."""
    from trl import GRPOConfig, GRPOTrainer

    from tgpo import TGPOConfig, TGPOTrainer

    timer = _StepTimer()
    common = _common_args(tmp / f"run-{kind}-{method}-{teacher}", warmup + timed)
    if kind == "trl":
        trainer = GRPOTrainer(str(paths["student"]), reward_funcs=[parity_reward], args=GRPOConfig(**common),
                              train_dataset=_dataset(), processing_class=tok, callbacks=[timer])
    else:
        args = TGPOConfig(**common, method=method, guidance_weight=2e-3, guidance_decay=0.0,
                          teacher_chunk_size=16)
        trainer = TGPOTrainer(str(paths["student"]), reward_funcs=[parity_reward], args=args,
                              train_dataset=_dataset(), processing_class=tok,
                              teacher_model=str(paths[teacher]) if teacher else None, callbacks=[timer])
    phases = _instrument(trainer) if profile else None
    trainer.train()
    times = timer.times[warmup:]
    row = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "n": len(times)}
    if phases is not None:
        row["phases"] = {k: sum(v[warmup:]) / len(times) for k, v in phases.items()}
        row["phases"]["step"] = sum(times) / len(times)
    return row


def _instrument(trainer) -> dict:
    """Wrap the hooks of one step to time its phases (per optimizer step)."""
    phases = {"generation": [], "rewards": [], "teacher_pass": [], "generate_and_score": [], "loss_forward": []}
    current: dict[str, float] = {}

    def wrap(obj, name, key, accumulate=False):
        fn = getattr(obj, name)

        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                current[key] = current.get(key, 0.0) + time.perf_counter() - t0
        setattr(obj, name, timed)

    wrap(trainer, "_generate", "generation")
    wrap(trainer, "_calculate_rewards", "rewards")
    wrap(trainer, "_generate_and_score_completions", "generate_and_score")
    wrap(trainer, "_compute_loss", "loss_forward")
    if trainer.teacher is not None:
        wrap(trainer.teacher, "score", "teacher_pass")

    from transformers import TrainerCallback

    class Flush(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            for k in phases:
                phases[k].append(current.get(k, 0.0))
            current.clear()

    trainer.add_callback(Flush())
    return phases


# -------------------------------------------------------------------------------------- teacher memory
_MEM_CHILD = r"""
import json, os, resource, sys, time
os.environ["OMP_NUM_THREADS"] = "1"
limit = int(sys.argv[4]) * 2**30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import torch
torch.set_num_threads(1)
sys.path[:0] = sys.argv[5:]
from tiny_models import build_model, build_tokenizer
from tgpo.teacher import teacher_scores
B, chunk, T = int(sys.argv[1]), (None if sys.argv[2] == "none" else int(sys.argv[2])), int(sys.argv[3])
tok = build_tokenizer()
model = build_model(tok, hidden=64, layers=1, vocab_size=%d).eval()
model.config.max_position_embeddings = 4096
g = torch.Generator().manual_seed(0)
P = 16
prompt_ids = torch.randint(4, len(tok), (B, P), generator=g); prompt_mask = torch.ones(B, P, dtype=torch.long)
completion_ids = torch.randint(4, len(tok), (B, T), generator=g); completion_mask = torch.ones(B, T, dtype=torch.long)
with torch.no_grad():  # warm the kernels on a short input, then take the baseline
    teacher_scores(model, prompt_ids[:1], prompt_mask[:1], completion_ids[:1, :8], completion_mask[:1, :8], len(tok), 1)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
import threading
peak = [rss()]; base = peak[0]; stop = [False]
def poll():
    while not stop[0]:
        peak[0] = max(peak[0], rss()); time.sleep(0.002)
th = threading.Thread(target=poll); th.start()
t0 = time.perf_counter()
out = teacher_scores(model, prompt_ids, prompt_mask, completion_ids, completion_mask, len(tok), chunk)
dt = time.perf_counter() - t0
stop[0] = True; th.join()
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak_bytes": max(peak[0], maxrss) - base, "seconds": dt}))
""" % VOCAB_LARGE  # noqa: UP031


def teacher_memory(B: int, chunk: int | None, T: int = 2048, limit_gb: int = 9) -> dict:
    code = _MEM_CHILD
    res = subprocess.run([sys.executable, "-c", code, str(B), "none" if chunk is None else str(chunk), str(T),
                          str(limit_gb), str(REPO), str(REPO / "tests")], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"teacher memory child failed (B={B}, chunk={chunk}): {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------- scorer
def _scorer_cases(n: int, offset: int):
    """Half plain numbers (the grader's fast path), half LaTeX that needs Math-Verify (fractions, roots); a third of
    the plain ones wrong. ``offset`` makes every case new to the grader's verdict cache."""
    golds, comps = [], []
    for j in range(n):
        i = j + offset
        if j % 2:
            g = str(i * 7 % 997)
            pred = g if j % 3 else str(int(g) + 1)
        else:
            g = f"\\frac{{{i + 1}}}{{{i + 2}}}" if j % 4 else f"{i + 2}\\sqrt{{{(i % 5) + 2}}}"
            pred = f"\\dfrac{{{i + 1}}}{{{i + 2}}}" if j % 4 else f"\\sqrt{{{(i % 5) + 2}}}\\cdot {i + 2}"
        golds.append(g)
        comps.append(f"<think>some steps {i}</think> The answer is $\\boxed{{{pred}}}$.")
    return comps, golds


def scorer_throughput(n: int = 256) -> dict:
    from tgpo.scoring import math_correct, math_correct_batch

    math_correct_batch(*_scorer_cases(8, 10_000))  # start the workers
    comps, golds = _scorer_cases(n, 0)
    t0 = time.perf_counter()
    verdicts = math_correct_batch(comps, golds)
    batch_s = time.perf_counter() - t0
    m = min(64, n)
    comps, golds = _scorer_cases(m, 20_000)
    t0 = time.perf_counter()
    for c, g in zip(comps, golds):
        math_correct(c, g)
    single_s = time.perf_counter() - t0
    return {"n": n, "batch_per_s": n / batch_s, "single_per_s": m / single_s, "accepted": sum(verdicts)}


# ----------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=OUT)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timed", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1 warm-up + 2 timed steps, smaller memory case (tests)")
    args = parser.parse_args(argv)
    import tempfile

    import torch

    torch.set_num_threads(1)
    from repro.common import Manifest

    warmup, timed = (1, 2) if args.quick else (args.warmup, args.timed)
    mem_T = 256 if args.quick else 2048
    manifest = Manifest(script="repro/bench.py", profile="bench", seeds=[0],
                        config={"warmup": warmup, "timed": timed, "prompts_per_step": 16, "num_generations": 8,
                                "max_completion_length": 24, "memory_vocab": VOCAB_LARGE, "memory_tokens": mem_T,
                                "memory_batch": 8, "threads": 1})
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        tok, paths = _models(tmp)
        sizes = {k: _n_params(p) for k, p in paths.items()}
        for k, v in sizes.items():
            rows.append({"section": "models", "name": k, "teacher": "", "value": v, "unit": "parameters"})
        print(f"[bench] parameters: {sizes} (4x teacher / student = {sizes['4x'] / sizes['student']:.2f})", flush=True)

        runs = [("trl", "grpo", None)] + [("tgpo", m, None) for m in METHODS if m not in TEACHER_METHODS]
        runs += [("tgpo", m, t) for t in ("same", "4x") for m in TEACHER_METHODS]
        step = {}
        for kind, method, teacher in runs:
            r = time_run(kind, method, teacher, paths, tok, tmp, warmup, timed)
            name = "trl_GRPOTrainer" if kind == "trl" else f"tgpo_{method}"
            step[(name, teacher)] = r
            print(f"[bench] {name:<22} teacher={teacher or '-':<5} {r['median_s']:.3f} s/step "
                  f"(min {r['min_s']:.3f}, max {r['max_s']:.3f}, n={r['n']})", flush=True)
            rows.append({"section": "step_time", "name": name, "teacher": teacher or "", "value": r["median_s"],
                         "unit": "s/step (median)", "min": r["min_s"], "max": r["max_s"], "n": r["n"]})
        base = step[("trl_GRPOTrainer", None)]["median_s"]
        for (name, teacher), r in step.items():
            rows.append({"section": "step_ratio", "name": name, "teacher": teacher or "",
                         "value": r["median_s"] / base, "unit": "x TRL GRPOTrainer"})

        prof = time_run("tgpo", "tgpo", "same", paths, tok, tmp, warmup, timed, profile=True)["phases"]
        p = dict(prof)
        p["other_scoring"] = max(0.0, p["generate_and_score"] - p["generation"] - p["rewards"] - p["teacher_pass"])
        p["backward_optimizer_other"] = max(0.0, p["step"] - p["generate_and_score"] - p["loss_forward"])
        for key in ("generation", "rewards", "teacher_pass", "other_scoring", "loss_forward",
                    "backward_optimizer_other", "step"):
            rows.append({"section": "profile_tgpo_same", "name": key, "teacher": "same", "value": p[key],
                         "unit": "s per step (mean)"})
        print(f"[bench] TGPO step profile: { {k: round(v, 4) for k, v in p.items()} }", flush=True)

        mem = {}
        cases = [("chunked", 8, 1), ("chunked", 8, 2), ("naive", 1, None), ("naive", 2, None)]
        if args.quick:
            cases.append(("naive", 8, None))
        for label, B, chunk in cases:
            m = teacher_memory(B, chunk, T=mem_T)
            mem[(label, B, chunk)] = m
            rows.append({"section": "teacher_memory", "name": f"{label}_B{B}" + (f"_chunk{chunk}" if chunk else ""),
                         "teacher": f"V={VOCAB_LARGE},T={mem_T}", "value": m["peak_bytes"] / 2**20, "unit": "MiB peak",
                         "seconds": m["seconds"]})
            print(f"[bench] teacher pass {label} B={B} chunk={chunk}: peak {m['peak_bytes'] / 2**20:.0f} MiB, "
                  f"{m['seconds']:.2f} s", flush=True)
        n1, n2 = mem[("naive", 1, None)]["peak_bytes"], mem[("naive", 2, None)]["peak_bytes"]
        naive8 = mem[("naive", 8, None)]["peak_bytes"] if args.quick else n1 + (n2 - n1) * 7  # linear in B
        rows.append({"section": "teacher_memory", "name": "naive_B8" + ("" if args.quick else "_extrapolated"),
                     "teacher": f"V={VOCAB_LARGE},T={mem_T}", "value": naive8 / 2**20, "unit": "MiB peak"})
        analytic = 8 * (mem_T + 1) * VOCAB_LARGE * 4
        rows.append({"section": "teacher_memory", "name": "naive_B8_logits_fp32_analytic",
                     "teacher": f"V={VOCAB_LARGE},T={mem_T}", "value": analytic / 2**20, "unit": "MiB"})
        for chunk in (1, 2):
            ratio = mem[("chunked", 8, chunk)]["peak_bytes"] / naive8
            rows.append({"section": "teacher_memory_ratio", "name": f"chunk{chunk}_over_naive", "teacher": "",
                         "value": ratio, "unit": "fraction"})

        sc = scorer_throughput(64 if args.quick else 256)
        rows.append({"section": "scorer", "name": "math_correct_batch", "teacher": "", "value": sc["batch_per_s"],
                     "unit": "completions/s", "n": sc["n"]})
        rows.append({"section": "scorer", "name": "math_correct_sequential", "teacher": "",
                     "value": sc["single_per_s"], "unit": "completions/s", "n": 64})
        print(f"[bench] scorer: {sc}", flush=True)

    keys = ["section", "name", "teacher", "value", "unit", "min", "max", "n", "seconds"]
    with open(out / "bench.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in keys})
    _plot(rows, out / "bench.png")
    _readme(rows, out / "README.md", time.time() - t_start, sizes)
    manifest.extra["wall_time_bench_s"] = round(time.time() - t_start, 1)
    manifest.extra["machine_cpus"] = os.cpu_count()
    manifest.write(out)
    print(f"[bench] wrote {out}/bench.csv, bench.png, README.md, manifest.json in {time.time() - t_start:.0f} s")
    return 0


def _get(rows, section, name, teacher=None):
    for r in rows:
        if r["section"] == section and r["name"] == name and (teacher is None or r["teacher"] == teacher):
            return r["value"]
    return None


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    ax = axes[0]
    st = [r for r in rows if r["section"] == "step_time"]
    labels = [r["name"].replace("tgpo_", "") + (f"\n({r['teacher']})" if r["teacher"] else "") for r in st]
    colors = ["#555555" if r["name"].startswith("trl") else {"": "#4c72b0", "same": "#55a868", "4x": "#c44e52"}[r["teacher"]]
              for r in st]
    ax.bar(range(len(st)), [r["value"] for r in st], color=colors)
    base = _get(rows, "step_time", "trl_GRPOTrainer")
    ax.axhline(base, color="k", ls="--", lw=1, label="TRL GRPOTrainer")
    ax.axhline(1.2 * base, color="orange", ls=":", lw=1.5, label="goal: 1.2x GRPO")
    ax.set_xticks(range(len(st)), labels, rotation=60, fontsize=8)
    ax.set_ylabel("seconds per optimizer step (median)")
    ax.set_title("Step time, tiny student, 16 prompts x 8 rollouts\n(green: same-size teacher, red: ~4x teacher)")
    ax.legend(fontsize=8)

    ax = axes[1]
    prof = [r for r in rows if r["section"] == "profile_tgpo_same" and r["name"] != "step"]
    bottom = 0.0
    for r, c in zip(prof, plt.cm.tab10.colors):
        ax.bar([0], [r["value"]], bottom=bottom, color=c, label=f"{r['name']} {r['value'] * 1e3:.0f} ms")
        bottom += r["value"]
    ax.set_xlim(-1, 2.2)
    ax.set_xticks([0], ["TGPO step\n(same-size teacher)"])
    ax.set_ylabel("seconds per step (mean)")
    ax.set_title("Where a TGPO step's time goes")
    ax.legend(fontsize=8, loc="upper right")

    ax = axes[2]
    mem = [r for r in rows if r["section"] == "teacher_memory" and "analytic" not in r["name"]]
    ax.bar(range(len(mem)), [r["value"] / 1024 for r in mem],
           color=["#55a868" if "chunked" in r["name"] else "#c44e52" for r in mem])
    ax.set_xticks(range(len(mem)), [r["name"].replace("_", "\n", 1) for r in mem], fontsize=8)
    ax.set_ylabel("peak memory of the teacher pass (GiB, RSS over baseline)")
    ax.set_title(f"Teacher pass, V={VOCAB_LARGE}, {mem[0]['teacher'].split(',')[1]}, CPU\n"
                 "(green: chunked rows; red: naive whole batch)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _readme(rows, path: Path, wall: float, sizes: dict) -> None:
    base = _get(rows, "step_time", "trl_GRPOTrainer")
    lines = ["# Bench: what TGPO costs over GRPO (CPU, tiny models)", "",
             "Made by `nox -s bench` (`python repro/bench.py`); figures in `bench.csv`, plot `bench.png`, provenance "
             f"`manifest.json`. Wall time {wall:.0f} s on {os.cpu_count()} CPU cores, one torch thread.", "",
             f"Models: student {sizes['student']:,} parameters (Qwen2, hidden 64, 2 layers, character vocabulary); "
             f"same-size teacher {sizes['same']:,}; 4x teacher {sizes['4x']:,} "
             f"({sizes['4x'] / sizes['student']:.2f}x). 16 prompts x 8 rollouts, 24 new tokens, a cheap parity reward "
             "(the grader is measured separately). TGPO's weight is held constant, so every step runs the teacher "
             "pass.", "", "## Seconds per optimizer step (median)", "", "| trainer | teacher | s/step | x TRL GRPO |",
             "|---|---|---|---|"]
    for r in rows:
        if r["section"] == "step_time":
            lines.append(f"| {r['name']} | {r['teacher'] or '-'} | {r['value']:.3f} | {r['value'] / base:.2f} |")
    tg = _get(rows, "step_time", "tgpo_tgpo", "same")
    gr = _get(rows, "step_time", "tgpo_grpo")
    lines += ["", f"Goal TGPO <= 1.2x GRPO with a same-size teacher: TGPO {tg:.3f} s vs TRL GRPOTrainer {base:.3f} s = "
              f"**{tg / base:.2f}x** ({'met' if tg / base <= 1.2 else 'NOT met'}); vs this suite's own GRPO "
              f"{tg / gr:.2f}x.", "", "## Where a TGPO step goes (same-size teacher, mean per step)", "",
              "| phase | seconds | share |", "|---|---|---|"]
    step = _get(rows, "profile_tgpo_same", "step")
    for r in rows:
        if r["section"] == "profile_tgpo_same" and r["name"] != "step":
            lines.append(f"| {r['name']} | {r['value']:.4f} | {100 * r['value'] / step:.0f}% |")
    lines += [f"| whole step | {step:.4f} | 100% |", "", "## Teacher-pass peak memory (CPU RSS over baseline)", "",
              "| case | MiB | seconds |", "|---|---|---|"]
    for r in rows:
        if r["section"] == "teacher_memory":
            sec = f"{r['seconds']:.2f}" if r.get("seconds") else ""
            lines.append(f"| {r['name']} | {r['value']:.0f} | {sec} |")
    for r in rows:
        if r["section"] == "teacher_memory_ratio":
            lines.append(f"\n{r['name']}: **{100 * r['value']:.1f}%** of naive "
                         f"({'met' if r['value'] <= 0.25 else 'NOT met'}: goal <= 25%)")
    lines += ["", "## Scorer throughput", ""]
    for r in rows:
        if r["section"] == "scorer":
            lines.append(f"- {r['name']}: {r['value']:.0f} completions/s (n={r['n']})")
    lines += _gpu_section(path.parent)
    path.write_text("\n".join(lines) + "\n")


def _gpu_section(out: Path) -> list[str]:
    """The figures of the last GPU check (repro/launch/gpu_check.sh), copied to results/bench/gpu/, if any."""
    f = out / "gpu" / "gpu_check.json"
    if not f.exists():
        return []
    d = json.loads(f.read_text())
    lines = ["", f"## GPU check ({d.get('device')}, torch {d.get('torch')}; `gpu/gpu_check.json`)", ""]
    mem = d.get("teacher_memory_bf16_V152064_T2048_B8")
    if mem:
        lines += ["Teacher pass, bf16 teacher (hidden 256, 2 layers, V=152064), T=2048, batch 8, "
                  "`torch.cuda.max_memory_allocated` over baseline:", "", "| chunk rows | peak MiB | seconds |",
                  "|---|---|---|"]
        for k, v in mem.items():
            if k.startswith("chunk_"):
                lines.append(f"| {k[6:]} | {v['peak_mib']:.0f} | {v['seconds']:.3f} |")
        lines.append(f"\nchunk 1 / naive = {100 * mem['ratio_chunk1_over_naive']:.1f}%, chunk 2 / naive = "
                     f"{100 * mem['ratio_chunk2_over_naive']:.1f}%")
    st = d.get("steps_16x8_64tok_hidden256_4layers")
    if st:
        lines += ["", "Steps on CUDA (16 prompts x 8, 64 new tokens, student = teacher = hidden 256 x 4 layers, bf16; "
                  "median of steps 3-6):", "", "| trainer | s/step | peak MiB |", "|---|---|---|"]
        for k, v in st.items():
            lines.append(f"| {k} | {v['median_s']:.3f} | {v['peak_mib']:.0f} |")
    for k in d:
        if k.endswith("_error"):
            lines.append(f"\n{k}: see gpu_check.json")
    return lines


if __name__ == "__main__":
    sys.exit(main())
