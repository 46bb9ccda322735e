"""What TGPO costs over GRPO, measured on CPU with tiny models: ``python repro/bench.py`` (or ``nox -s bench``).

Writes ``results/bench/``: ``bench.csv`` (every figure), ``bench.png``, ``manifest.json`` and ``README.md``.

1. **Seconds per optimizer step** of plain TRL ``GRPOTrainer`` and of ``TGPOTrainer`` for every method, on the same
   tiny student (16 prompts x 8 rollouts, 24 new tokens) with a same-size teacher and a ~4x (parameters) teacher;
   warm-up steps, then the median of timed steps. TGPO's guidance weight is held constant so every timed step runs
   the teacher pass (the worst case: the paper's schedule skips it after step 200).
2. **Where a TGPO step's time goes**: generation, rewards, teacher pass, the rest of TRL's scoring, the loss forward,
   and backward + optimizer.
3. **Teacher-pass peak memory at the paper's length** (1,024 prompt + 8,192 completion positions, V = 152,064), per
   row chunk, with the LM head in tiles of ``teacher_chunk_tokens`` positions: measured on CPU for a 2-layer
   teacher of hidden 256 (torch's allocations, tgpo.testing.track_allocations, and the process's RSS, each case in
   a fresh process), beside the formula ``tgpo.teacher.teacher_pass_peak_bytes``; then the formula's projection for
   the paper's teacher, Qwen3-30B-A3B in bf16, whose decoder-layer term is checked against one real-sized layer.
4. **Position-chunked against row-chunked teacher pass** at 2,048 completion tokens: seconds and peak memory.

The scorer's throughput is measured by ``repro/bench_scorer.py`` (``scorer.csv``), shown in the README if present.

Goals (issues): TGPO <= 1.2x GRPO per step with a same-size teacher; teacher-pass peak per row <= 1/8 of one row's
full logits; position-chunked <= 1.1x the time of row-chunked.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"
VOCAB_LARGE = 152064
PAPER_TEACHER = "Qwen/Qwen3-30B-A3B-Thinking-2507"
PAPER_PROMPT, PAPER_COMPLETION = 1024, 8192


def _methods() -> tuple[list[str], list[str]]:
    """(methods without a teacher, methods that read one), from the one method registry."""
    from tgpo.objectives import METHODS

    return [m for m, spec in METHODS.items() if not spec.teacher], [m for m, spec in METHODS.items() if spec.teacher]


# ------------------------------------------------------------------------------------------ step time
def _models(tmp: Path):
    from tgpo.testing import build_tokenizer, save_model

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

    def wrap(obj, name, key):
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
def _probe(**kwargs) -> list[dict]:
    from tgpo.testing import in_fresh_process, teacher_pass_probe

    return in_fresh_process(teacher_pass_probe, **kwargs)


def teacher_memory_cpu(rows_list, P: int, T: int, chunk_tokens: int) -> list[dict]:
    """Per row chunk: the CPU teacher pass at P + T positions, hidden 256, 2 layers, V = 152,064, float32, padded."""
    out = []
    for r in rows_list:
        m = _probe(rows=r, variants=[(r, chunk_tokens)], prompt_len=P, completion_len=T, vocab_size=VOCAB_LARGE,
                   hidden=256, layers=2, padded=True)[0]
        logits_row = T * VOCAB_LARGE * 4  # one row's float32 logits over its completion
        out.append({"section": "teacher_memory_cpu", "name": f"rows{r}_tokens{chunk_tokens}",
                    "teacher": f"hidden256x2,V={VOCAB_LARGE},P={P},T={T}", "value": m["peak_bytes"] / 2**20,
                    "unit": "MiB peak (torch allocations)", "rss_mib": m["rss_peak_bytes"] / 2**20,
                    "formula_mib": m["formula_bytes"] / 2**20, "seconds": m["seconds"],
                    "fraction_of_one_row_logits": m["peak_bytes"] / logits_row, "rows": r})
        print(f"[bench] teacher pass CPU rows={r} P={P} T={T} tokens={chunk_tokens}: {m['peak_bytes'] / 2**20:.0f} MiB "
              f"(formula {m['formula_bytes'] / 2**20:.0f}, RSS {m['rss_peak_bytes'] / 2**20:.0f}), "
              f"{m['peak_bytes'] / logits_row:.3f} of one row's logits, {m['seconds']:.1f} s", flush=True)
    return out


def paper_teacher_projection(rows_list, chunk_tokens: int, gpu_gb: float = 80.0) -> list[dict]:
    """The formula for the paper's teacher in bf16 at 1,024 + 8,192 positions, and one of its layers measured."""
    from tgpo.plan import KNOWN_MODELS
    from tgpo.teacher import decoder_layer_width, teacher_pass_peak_bytes
    from tgpo.testing import in_fresh_process, layer_probe

    cfg = {k: v for k, v in KNOWN_MODELS[PAPER_TEACHER].items() if k not in ("architectures", "tokenizer")}
    layer = in_fresh_process(layer_probe, config=cfg, positions=512, dtype="bfloat16")
    out = [{"section": "paper_teacher_layer", "name": "bytes_per_position", "teacher": PAPER_TEACHER,
            "value": layer["measured_bytes_per_position"], "unit": "bytes/position (one layer, bf16, CPU, measured)",
            "formula": layer["formula_bytes_per_position"]}]
    print(f"[bench] {PAPER_TEACHER} decoder layer: {layer}", flush=True)
    V, H, width = cfg["vocab_size"], cfg["hidden_size"], decoder_layer_width(cfg)
    weights_gb = 61.1  # 30.5B parameters in bf16
    logits_row = PAPER_COMPLETION * V * 4
    for r in rows_list:
        for attn, padded in (("sdpa", True), ("flash_attention_2", False)):
            peak = teacher_pass_peak_bytes(r, PAPER_COMPLETION, V, H, chunk_tokens, layer_width=width,
                                           prompt_len=PAPER_PROMPT, dtype_bytes=2, padded=padded)
            naive = teacher_pass_peak_bytes(r, PAPER_COMPLETION, V, H, None, layer_width=width,
                                            prompt_len=PAPER_PROMPT, dtype_bytes=2, padded=padded)
            out.append({"section": "paper_teacher_projection", "name": f"rows{r}_{attn}", "teacher": PAPER_TEACHER,
                        "value": peak / 1e9, "unit": "GB (formula)", "rows": r,
                        "row_chunked_gb": naive / 1e9, "fraction_of_one_row_logits": peak / logits_row,
                        "fits_80gb_beside_weights": weights_gb + peak / 1e9 <= gpu_gb - 2})
    return out


def position_vs_row_chunks(rows: int, T: int, repeats: int) -> list[dict]:
    """Seconds (the variants interleaved in one process, the fastest of ``repeats`` rounds) and peak memory (each
    in a fresh process) of the same teacher pass with row chunks only and with position tiles."""
    variants = [(1, None), (1, 512), (rows, 512)]
    common = dict(rows=rows, prompt_len=16, completion_len=T, vocab_size=VOCAB_LARGE, hidden=256, layers=2, padded=True)
    times = _probe(variants=variants, repeats=repeats, measure_memory=False, **common)
    out = []
    for (chunk, tokens), t in zip(variants, times):
        m = _probe(variants=[(chunk, tokens)], **common)[0]
        label = "row_chunked" if tokens is None else "position_chunked"
        out.append({"section": "position_vs_row", "name": f"{label}_rows{chunk}_tokens{tokens or 'all'}",
                    "teacher": f"hidden256x2,V={VOCAB_LARGE},B={rows},T={T}", "value": t["seconds"],
                    "unit": f"s per pass (fastest of {repeats})", "seconds_median": t["seconds_median"],
                    "peak_mib": m["peak_bytes"] / 2**20, "formula_mib": m["formula_bytes"] / 2**20})
        print(f"[bench] {label} rows/chunk={chunk} tokens={tokens}: {t['seconds']:.2f} s (median "
              f"{t['seconds_median']:.2f}), {m['peak_bytes'] / 2**20:.0f} MiB (formula {m['formula_bytes'] / 2**20:.0f})",
              flush=True)
    return out


def _scorer_rows(out: Path) -> list[dict]:
    """repro/bench_scorer.py's figures, if it has run."""
    f = out / "scorer.csv"
    if not f.exists():
        return []
    with open(f, newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=OUT)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timed", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1 warm-up + 2 timed steps, short sequences (a smoke run)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite README.md and bench.png from the folder's bench.csv and manifest.json")
    args = parser.parse_args(argv)
    if args.report_only:
        return _report_only(args.output_dir)
    import tempfile

    import torch

    torch.set_num_threads(1)
    warmup, timed = (1, 2) if args.quick else (args.warmup, args.timed)
    mem_P, mem_T = (64, 1024) if args.quick else (PAPER_PROMPT, PAPER_COMPLETION)
    cmp_T, cmp_repeats = (256, 2) if args.quick else (2048, 5)
    chunk_tokens = 512
    config = {"warmup": warmup, "timed": timed, "prompts_per_step": 16, "num_generations": 8,
              "max_completion_length": 24, "memory_vocab": VOCAB_LARGE, "memory_prompt": mem_P,
              "memory_completion": mem_T, "teacher_chunk_tokens": chunk_tokens, "compare_completion": cmp_T,
              "compare_rows": 2, "threads": 1, "quick": args.quick,
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    t_start = time.time()
    no_teacher, with_teacher = _methods()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        tok, paths = _models(tmp)
        sizes = {k: _n_params(p) for k, p in paths.items()}
        for k, v in sizes.items():
            rows.append({"section": "models", "name": k, "teacher": "", "value": v, "unit": "parameters"})
        print(f"[bench] parameters: {sizes} (4x teacher / student = {sizes['4x'] / sizes['student']:.2f})", flush=True)

        runs = [("trl", "grpo", None)] + [("tgpo", m, None) for m in no_teacher]
        runs += [("tgpo", m, t) for t in ("same", "4x") for m in with_teacher]
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

    rows += teacher_memory_cpu([1, 2], mem_P, mem_T, chunk_tokens)
    rows += paper_teacher_projection([1, 2, 4, 8, 16], chunk_tokens)
    rows += position_vs_row_chunks(2, cmp_T, cmp_repeats)

    keys = ["section", "name", "teacher", "value", "unit"]
    keys += sorted({k for r in rows for k in r} - set(keys))
    with open(out / "bench.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in keys})
    _plot(rows, out / "bench.png")
    _readme(rows, out, time.time() - t_start, sizes, config)
    _write_manifest(out, config, t_start)
    print(f"[bench] wrote {out}/bench.csv, bench.png, README.md, manifest.json in {time.time() - t_start:.0f} s")
    return 0


def _report_only(out: Path) -> int:
    """README and plot again from stored figures (after editing their wording), without measuring anything."""
    def typed(v: str):
        try:
            return float(v)
        except ValueError:
            return {"True": True, "False": False}.get(v, v)

    with open(out / "bench.csv", newline="") as fh:
        rows = [{k: typed(v) for k, v in r.items() if v != "" or k == "teacher"} for r in csv.DictReader(fh)]
    for r in rows:
        if "rows" in r:
            r["rows"] = int(r["rows"])
    manifest = json.loads((out / "manifest.json").read_text())
    sizes = {r["name"]: int(r["value"]) for r in _sec(rows, "models")}
    _plot(rows, out / "bench.png")
    _readme(rows, out, manifest["wall_time_s"], sizes, manifest["config"])
    return 0


def _write_manifest(out: Path, config: dict, started: float) -> None:
    """How the figures were made: command, git sha, versions, machine, settings (tgpo.provenance)."""
    import platform
    from datetime import datetime, timezone

    from tgpo.provenance import git_sha, package_versions

    record = {"script": "repro/bench.py", "command": " ".join(["python repro/bench.py", *sys.argv[1:]]),
              "git_sha": git_sha(),
              "started_utc": datetime.fromtimestamp(started, tz=timezone.utc).isoformat(timespec="seconds"),
              "wall_time_s": round(time.time() - started, 1),
              "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
              "versions": package_versions(), "config": config}
    (out / "manifest.json").write_text(json.dumps(record, indent=2) + "\n")


def _get(rows, section, name, teacher=None):
    for r in rows:
        if r["section"] == section and r["name"] == name and (teacher is None or r["teacher"] == teacher):
            return r["value"]
    return None


def _sec(rows, section):
    return [r for r in rows if r["section"] == section]


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    ax = axes[0, 0]
    st = _sec(rows, "step_time")
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

    ax = axes[0, 1]
    bottom = 0.0
    for r, c in zip([r for r in _sec(rows, "profile_tgpo_same") if r["name"] != "step"], plt.cm.tab10.colors):
        ax.bar([0], [r["value"]], bottom=bottom, color=c, label=f"{r['name']} {r['value'] * 1e3:.0f} ms")
        bottom += r["value"]
    ax.set_xlim(-1, 2.2)
    ax.set_xticks([0], ["TGPO step\n(same-size teacher)"])
    ax.set_ylabel("seconds per step (mean)")
    ax.set_title("Where a TGPO step's time goes")
    ax.legend(fontsize=8, loc="upper right")

    ax = axes[1, 0]
    cpu = _sec(rows, "teacher_memory_cpu")
    x = range(len(cpu))
    ax.bar([i - 0.2 for i in x], [r["value"] for r in cpu], width=0.4, color="#55a868", label="measured (torch allocations)")
    ax.bar([i + 0.2 for i in x], [r["formula_mib"] for r in cpu], width=0.4, color="#8172b2", label="formula")
    T, V = int(cpu[0]["teacher"].split("T=")[1]), VOCAB_LARGE
    ax.axhline(T * V * 4 / 8 / 2**20, color="orange", ls=":", lw=1.5, label="goal: 1/8 of one row's fp32 logits")
    ax.set_xticks(list(x), [f"{r['rows']} row(s) per chunk" for r in cpu])
    ax.set_ylabel("peak MiB beyond the weights")
    ax.set_title(f"Teacher pass on CPU, {cpu[0]['teacher']}\n(one row's fp32 logits: {T * V * 4 / 2**30:.1f} GiB)")
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    proj = _sec(rows, "paper_teacher_projection")
    for attn, c in (("sdpa", "#c44e52"), ("flash_attention_2", "#4c72b0")):
        pts = [r for r in proj if r["name"].endswith(attn)]
        ax.plot([r["rows"] for r in pts], [r["value"] for r in pts], "o-", color=c, label=f"position tiles of 512, {attn}")
    pts = [r for r in proj if r["name"].endswith("sdpa")]
    ax.plot([r["rows"] for r in pts], [r["row_chunked_gb"] for r in pts], "s--", color="#555555",
            label="row chunks only (full logits), sdpa")
    ax.axhline(80 - 61.1 - 2, color="orange", ls=":", lw=1.5, label="80 GB - 61 GB weights - 2 GB context")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("rows per teacher forward (teacher_chunk_size)")
    ax.set_ylabel("GB (formula)")
    ax.set_title(f"Projection: {PAPER_TEACHER.split('/')[1]} in bf16, {PAPER_PROMPT} + {PAPER_COMPLETION} positions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _readme(rows, out: Path, wall: float, sizes: dict, config: dict) -> None:
    base = _get(rows, "step_time", "trl_GRPOTrainer")
    lines = ["# Bench: what TGPO costs over GRPO (CPU, tiny models)", "",
             "Made by `nox -s bench` (`python repro/bench.py`); figures in `bench.csv`, plot `bench.png`, provenance "
             f"(git sha, versions, settings) `manifest.json`. Wall time {wall:.0f} s on {os.cpu_count()} CPU cores, "
             f"one torch thread; load average {config['load_average_at_start'][0]:.1f} when it started (other work on "
             "the machine slows and scatters the timings; the memory figures are exact).", "",
             f"Models: student {sizes['student']:,} parameters (Qwen2, hidden 64, 2 layers, character vocabulary); "
             f"same-size teacher {sizes['same']:,}; 4x teacher {sizes['4x']:,} "
             f"({sizes['4x'] / sizes['student']:.2f}x). 16 prompts x 8 rollouts, 24 new tokens, a cheap parity reward "
             "(the grader is measured separately). TGPO's weight is held constant, so every step runs the teacher "
             "pass.", "", "## Seconds per optimizer step (median)", "", "| trainer | teacher | s/step | x TRL GRPO |",
             "|---|---|---|---|"]
    for r in _sec(rows, "step_time"):
        lines.append(f"| {r['name']} | {r['teacher'] or '-'} | {r['value']:.3f} | {r['value'] / base:.2f} |")
    tg = _get(rows, "step_time", "tgpo_tgpo", "same")
    gr = _get(rows, "step_time", "tgpo_grpo")
    lines += ["", f"Goal TGPO <= 1.2x GRPO with a same-size teacher: TGPO {tg:.3f} s vs TRL GRPOTrainer {base:.3f} s = "
              f"**{tg / base:.2f}x** ({'met' if tg / base <= 1.2 else 'NOT met'}); vs this suite's own GRPO "
              f"{tg / gr:.2f}x.", "", "## Where a TGPO step goes (same-size teacher, mean per step)", "",
              "| phase | seconds | share |", "|---|---|---|"]
    step = _get(rows, "profile_tgpo_same", "step")
    for r in _sec(rows, "profile_tgpo_same"):
        if r["name"] != "step":
            lines.append(f"| {r['name']} | {r['value']:.4f} | {100 * r['value'] / step:.0f}% |")
    lines.append(f"| whole step | {step:.4f} | 100% |")

    cpu = _sec(rows, "teacher_memory_cpu")
    P, T = config["memory_prompt"], config["memory_completion"]
    row_logits = T * VOCAB_LARGE * 4
    lines += ["", f"## Teacher-pass peak memory at {P} + {T} positions (CPU, measured)", "",
              f"`tgpo.teacher.teacher_scores` with a Qwen2 teacher of hidden 256, 2 layers and V = {VOCAB_LARGE:,} "
              f"(float32), one row chunk of 1 or 2 full-length rows with one prompt pad (so SDPA's attention mask is "
              f"built, as in a real batch), the LM head in tiles of {config['teacher_chunk_tokens']} positions. "
              "Measured: the peak of torch's CPU allocations during the pass (`tgpo.testing.track_allocations`) and "
              "the process's peak RSS over its baseline, each case in a fresh process. Formula: "
              "`tgpo.teacher.teacher_pass_peak_bytes`, what `tgpo train --dry-run` uses.", "",
              "| rows per chunk | measured MiB | RSS MiB | formula MiB | / one row's fp32 logits | seconds |",
              "|---|---|---|---|---|---|"]
    for r in cpu:
        lines.append(f"| {r['rows']} | {r['value']:.0f} | {r['rss_mib']:.0f} | {r['formula_mib']:.0f} | "
                     f"{r['fraction_of_one_row_logits']:.3f} | {r['seconds']:.1f} |")
    one = cpu[0]["fraction_of_one_row_logits"]
    lines += ["", f"One row's float32 logits over its {T} completion positions: {row_logits / 2**30:.2f} GiB (what the "
              f"row-chunked pass materialised, before its float32 copy and log-sum-exp buffer). Goal <= 1/8 for one "
              f"row: **{one:.3f}** ({'met' if one <= 1 / 8 else 'NOT met'})."]
    if len(cpu) > 1:
        lines[-1] += (f" Two rows per chunk: {cpu[1]['value'] / cpu[0]['value']:.2f}x one row (the body's activations "
                      "and SDPA's L x L masks grow with rows; the head's tile does not).")

    layer = _sec(rows, "paper_teacher_layer")[0]
    proj = _sec(rows, "paper_teacher_projection")
    paper_vocab = 151936  # the paper teacher's output rows (tgpo.plan.KNOWN_MODELS)
    lines += ["", f"## Projection for the paper's teacher ({PAPER_TEACHER}, bf16, {PAPER_PROMPT} + {PAPER_COMPLETION} "
              "positions)", "",
              f"The formula's decoder-layer term checked on one real-sized layer of this model (hidden 2048, 32 query "
              f"heads of 128, 4 kv heads, 128 experts, top 8; bf16 on CPU, 512 positions): measured "
              f"{layer['value'] / 1024:.1f} KiB per position, formula {layer['formula'] / 1024:.1f} KiB.", "",
              "| rows per chunk | peak GB, SDPA | peak GB, FlashAttention-2 | row chunks only (full logits), GB | "
              f"SDPA peak / one row's fp32 logits ({PAPER_COMPLETION * paper_vocab * 4 / 1e9:.2f} GB) | "
              "fits an 80 GB GPU beside 61 GB of weights |", "|---|---|---|---|---|---|"]
    for r in proj:
        if r["name"].endswith("sdpa"):
            fa = next(x for x in proj if x["rows"] == r["rows"] and x["name"].endswith("flash_attention_2"))
            lines.append(f"| {r['rows']} | {r['value']:.2f} | {fa['value']:.2f} | {r['row_chunked_gb']:.1f} | "
                         f"{r['fraction_of_one_row_logits']:.3f} | {'yes' if r['fits_80gb_beside_weights'] else 'no'} |")
    one = proj[0]
    tile_gb = config["teacher_chunk_tokens"] * paper_vocab * 6 / 1e9
    lines += ["", f"Goal <= 1/8 of one row's logits: met by the head ({tile_gb:.2f} GB for its tile of "
              f"{config['teacher_chunk_tokens']} positions in bf16 + float32, "
              f"{tile_gb / (PAPER_COMPLETION * paper_vocab * 4 / 1e9):.3f} of a row's logits), **not** by the whole "
              f"pass of this teacher ({one['fraction_of_one_row_logits']:.3f} at one row with SDPA): here the body's "
              "activations (the experts gather every token 8 times, 141 KiB per position) and SDPA's L x L masks set "
              "the peak, and tiling the head cannot shrink them. Defaults (`tgpo.teacher.DEFAULT_CHUNK_ROWS`, "
              "`DEFAULT_CHUNK_TOKENS`): 4 rows, 512 positions, 6.5 GB beside the weights."]

    cmp_rows = _sec(rows, "position_vs_row")
    rc = cmp_rows[0]
    lines += ["", f"## Position-chunked against row-chunked teacher pass ({rc['teacher']}, CPU)", "",
              f"The three passes alternate in one process; seconds = {rc['unit'].split('(')[1][:-1]} rounds (the least "
              "disturbed by other work on this shared machine), median beside it. Memory: one fresh process each.", "",
              "| pass | seconds | median | x row-chunked | peak MiB | formula MiB |", "|---|---|---|---|---|---|"]
    for r in cmp_rows:
        lines.append(f"| {r['name']} | {r['value']:.2f} | {r['seconds_median']:.2f} | {r['value'] / rc['value']:.2f} | "
                     f"{r['peak_mib']:.0f} | {r['formula_mib']:.0f} |")
    worst = max(r["value"] / rc["value"] for r in cmp_rows[1:])
    lines += ["", f"Goal position-chunked <= 1.1x row-chunked: worst **{worst:.2f}x** "
              f"({'met' if worst <= 1.1 else 'NOT met'}). The rest of a training step is the same code either way, "
              "so a step's ratio is at most the pass's."]

    scorer = _scorer_rows(out)
    lines += ["", "## Scorer throughput", ""]
    if scorer:
        lines += ["From `scorer.csv` (`python repro/bench_scorer.py`):", "", "| " + " | ".join(scorer[0]) + " |",
                  "|" + "---|" * len(scorer[0])]
        lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in scorer]
    else:
        lines.append("Not measured here: `python repro/bench_scorer.py` writes `scorer.csv`.")
    lines += _gpu_section(out)
    (out / "README.md").write_text("\n".join(lines) + "\n")


def _gpu_section(out: Path) -> list[str]:
    """The figures of the last GPU check (repro/launch/gpu_check.sh), copied to results/bench/gpu/, if any."""
    f = out / "gpu" / "gpu_check.json"
    if not f.exists():
        return []
    d = json.loads(f.read_text())
    lines = ["", f"## GPU check ({d.get('device')}, torch {d.get('torch')}, git {d.get('git_sha', 'unrecorded')}; "
             "`gpu/gpu_check.json`)", ""]
    old = d.get("teacher_memory_bf16_V152064_T2048_B8")
    if old:
        lines += ["Run of 2026-11-26 (commit 418870e), **before position chunks** (the row-chunked pass): bf16 "
                  "teacher (hidden 256, 2 layers, V=152064), T=2048, batch 8, `torch.cuda.max_memory_allocated` over "
                  "baseline:", "", "| chunk rows | peak MiB | seconds |", "|---|---|---|"]
        for k, v in old.items():
            if k.startswith("chunk_"):
                lines.append(f"| {k[6:]} | {v['peak_mib']:.0f} | {v['seconds']:.3f} |")
    new = d.get("teacher_memory_paper_length")
    if new:
        lines += ["", f"Teacher pass at {new['prompt']} + {new['completion']} positions, bf16 teacher (hidden 256, "
                  f"2 layers, V={new['vocab']}), `torch.cuda.max_memory_allocated` over the baseline:", "",
                  "| rows per chunk | head tile (positions) | peak MiB | formula MiB | seconds |", "|---|---|---|---|---|"]
        for r in new["cases"]:
            lines.append(f"| {r['rows']} | {r['chunk_tokens'] or 'all'} | {r['peak_bytes'] / 2**20:.0f} | "
                         f"{r['formula_bytes'] / 2**20:.0f} | {r['seconds']:.3f} |")
    layer = d.get("paper_teacher_layer")
    if layer:
        lines.append(f"\n{PAPER_TEACHER} decoder layer on CUDA (bf16): measured "
                     f"{layer['measured_bytes_per_position'] / 1024:.1f} KiB per position, formula "
                     f"{layer['formula_bytes_per_position'] / 1024:.1f} KiB.")
    cmp = d.get("position_vs_row")
    if cmp:
        lines += ["", "| pass | seconds | peak MiB |", "|---|---|---|"]
        lines += [f"| {k} | {v['seconds']:.4f} | {v['peak_bytes'] / 2**20:.0f} |" for k, v in cmp.items()]
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
