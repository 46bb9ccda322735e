"""The trainer bench: ``python -m bench.trainer`` (``nox -s bench``). Writes ``results/bench/``: ``bench.csv`` (every
figure), ``bench.png``, ``manifest.json`` and ``README.md``.

1. **Step ratios, interleaved** (docs/method.md §7 for what is compared). At the lab's recipe (the lab's student and
   cross-family teacher, 64 prompts x 8 rollouts, T = 0.6, 64 new tokens, the real reward, the lab's diagnostics on),
   the contenders — TRL's ``GRPOTrainer``, and ``TGPOTrainer`` with GRPO, TGPO-Reg, RKL and KDRL — train in one
   process, each in its own thread, taking turns one optimizer step at a time: the order of the turns is rotated and
   reversed every round, so load from other processes falls on all alike. Each step's wall time and CPU time (the
   thread's) are recorded; a ratio is the median over rounds of the per-round ratio, with its range. With
   ``--identical`` each step starts from the same weights and seed, so every contender sees the same rollouts.
   Ratios against their bound: suite GRPO / TRL GRPO (bound 1.0); TGPO, RKL, KDRL / (suite GRPO + that contender's
   own teacher pass in the same round) (bound 1.0: one teacher forward over the rollout tokens is what any
   implementation must add).
2. **Where a step goes**: generation, reward, teacher pass, other scoring, student forward, backward, optimizer,
   diagnostics (the guidance share), rest — mean seconds per step of each contender.
3. **The head at V = 152,064** (CPU, the head alone, so it dominates): TRL's fused head (``lp`` and entropy, forward and
   backward) alone, with the student's log-prob of the teacher's token as a second fused-kernel pass (the trainer
   before issue 26), and from the shared log-sum-exp (:mod:`tgpo.head`): time (interleaved rounds, median) and peak
   memory (torch's allocations).
4. (``--memory``) **Teacher-pass memory** at the paper's length, its projection for the paper's teacher, and
   position- against row-chunked passes (``bench/probes.py``).

The scorer's throughput is measured by ``python -m bench.grader`` (``scorer.csv``), shown in the README if present.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from tgpo.cli import OneLineParser, output_folder, positive_int

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"
PROG = "python -m bench.trainer"
VOCAB_LARGE = 152064
PAPER_TEACHER = "Qwen/Qwen3-30B-A3B-Thinking-2507"
PAPER_PROMPT, PAPER_COMPLETION = 1024, 8192
#: The contenders of the interleaved step bench: name -> (trainer, method); the lab's settings for each
CONTENDERS = {"trl_grpo": ("trl", "grpo"), "grpo": ("tgpo", "grpo"), "tgpo": ("tgpo", "tgpo"),
              "rkl": ("tgpo", "rkl"), "kdrl": ("tgpo", "kdrl")}
PHASES = ("generation", "reward", "teacher_pass", "other_scoring", "student_forward", "backward", "optimizer",
          "diagnostics", "rest")


# ------------------------------------------------------------------------------------- interleaved steps
def lab_settings(out: Path, rounds: int) -> dict:
    """The lab's Table 1 trainer settings (repro/configs/lab/table1.yaml) for a bench of ``rounds`` + 1 steps."""
    return dict(output_dir=str(out), use_cpu=True, bf16=False, activation_checkpointing=False,
                per_device_train_batch_size=512, num_generations=8, max_completion_length=64, temperature=0.6,
                max_steps=rounds + 1, learning_rate=6e-5, lr_scheduler_type="constant", max_grad_norm=1.0,
                entropy_coef=0.001, logging_steps=1, report_to="none", save_strategy="no", seed=0,
                disable_tqdm=True)


class Turns:
    """Lets one contender thread run one optimizer step at a time, in a per-round order (rotated and reversed)."""

    def __init__(self, names: list[str], rounds: int):
        self.orders = []
        for r in range(rounds + 1):
            k = r % len(names)
            order = names[k:] + names[:k]
            self.orders.append(order[::-1] if r % 2 else order)
        self.queue = [n for order in self.orders for n in order]
        self.position = 0
        self.cond = threading.Condition()

    def wait(self, name: str) -> int:
        """Block until it is ``name``'s turn; the round number."""
        with self.cond:
            self.cond.wait_for(lambda: self.position >= len(self.queue) or self.queue[self.position] == name)
            return self.position // len(self.orders[0])

    def done(self) -> None:
        with self.cond:
            self.position += 1
            self.cond.notify_all()


def _timer(turns: Turns, name: str, trainer, identical: bool, log: list):
    import torch
    from transformers import TrainerCallback

    start_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()} if identical else None

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.round = turns.wait(name)
            if identical:  # the same weights and seed for every contender's step of this round
                trainer.model.load_state_dict(start_state)
                torch.manual_seed(1000 + self.round)
            trainer._bench_phases = {}
            self.t0, self.c0 = time.perf_counter(), time.thread_time()

        def on_step_end(self, args, state, control, **kw):
            wall, cpu = time.perf_counter() - self.t0, time.thread_time() - self.c0
            log.append({"round": self.round, "contender": name, "wall": wall, "cpu": cpu, **trainer._bench_phases})
            turns.done()

    return Timer()


def _instrument(trainer) -> None:
    """Time the phases of each step (wall and thread CPU) into ``trainer._bench_phases``."""
    def wrap(obj, attr, key):
        fn = getattr(obj, attr)

        def timed(*a, **kw):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                p = trainer._bench_phases
                p[key] = p.get(key, 0.0) + time.perf_counter() - t0
                p[key + "_cpu"] = p.get(key + "_cpu", 0.0) + time.thread_time() - c0
        setattr(obj, attr, timed)

    trainer._bench_phases = {}
    wrap(trainer, "_generate", "generation")
    wrap(trainer, "_calculate_rewards", "reward")
    wrap(trainer, "_generate_and_score_completions", "scoring")
    wrap(trainer, "_compute_loss", "loss")
    wrap(trainer.accelerator, "backward", "backward")
    if getattr(trainer, "teacher", None) is not None:
        wrap(trainer.teacher, "score", "teacher_pass")
    if hasattr(trainer, "_gradient_share"):
        wrap(trainer, "_gradient_share", "diagnostics")

    from transformers import TrainerCallback

    class Optimizer(TrainerCallback):  # the optimizer exists once training starts
        def on_train_begin(self, args, state, control, **kw):
            wrap(trainer.optimizer, "step", "optimizer")

    trainer.add_callback(Optimizer())


def _build(name: str, rounds: int, tmp: Path, identical: bool, turns: Turns, log: list, reward: str):
    from trl import GRPOConfig, GRPOTrainer

    from tgpo import TGPOConfig, TGPOTrainer
    from tgpo.lab.models import model_path
    from tgpo.lab.world import rl_dataset
    from tgpo.rewards import REWARD_FUNCTIONS
    from tgpo.teacher import load_tokenizer

    kind, method = CONTENDERS[name]
    student, teacher = model_path("student"), model_path("teacher_cross")
    tok = load_tokenizer(student)
    data = rl_dataset(n=64 * (rounds + 1))
    reward_fn = REWARD_FUNCTIONS["boxed"] if reward == "real" else parity_reward
    settings = lab_settings(tmp / name, rounds)
    if kind == "trl":
        trainer = GRPOTrainer(str(student), reward_funcs=[reward_fn], args=GRPOConfig(**settings), train_dataset=data,
                              processing_class=tok)
    else:
        extra = {"tgpo": {"guidance_weight": 0.05, "guidance_decay": 0.0}, "kdrl": {"kdrl_beta": 0.02}}.get(method, {})
        args = TGPOConfig(**settings, method=method, teacher_chunk_size=None, teacher_chunk_tokens=None,
                          log_guidance_share=True, agreement_token_classes={"content": "[0-9]", "style": "[^0-9]+"},
                          **extra)
        trainer = TGPOTrainer(str(student), reward_funcs=[reward_fn], args=args, train_dataset=data,
                              processing_class=tok, teacher_model=str(teacher) if method != "grpo" else None)
    _instrument(trainer)
    trainer.add_callback(_timer(turns, name, trainer, identical, log))
    return trainer


def parity_reward(completions, **kwargs):
    """Cheap, group-varying reward (``--reward cheap``): the timings then measure the trainers, not the grader."""
    return [float(len(c) % 2) for c in completions]


def interleaved_steps(rounds: int, identical: bool, reward: str, tmp: Path) -> list[dict]:
    """Per-step records ``{round, contender, wall, cpu, <phase>, <phase>_cpu}`` of every contender (round 0: warm-up)."""
    import torch

    torch.set_num_threads(1)
    names = list(CONTENDERS)
    turns, log = Turns(names, rounds), []
    trainers = {n: _build(n, rounds, tmp, identical, turns, log, reward) for n in names}
    errors = []

    def run(trainer):
        try:
            trainer.train()
        except BaseException as err:  # noqa: BLE001 - reported below, and the other threads must not wait forever
            errors.append(err)
            with turns.cond:
                turns.position = len(turns.queue)
                turns.cond.notify_all()

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in trainers.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return log


def _split(rec: dict, suffix: str = "") -> dict:
    """A step record's phases (``suffix='_cpu'``: CPU seconds) as the README's categories."""
    g = lambda k: rec.get(k + suffix, 0.0)  # noqa: E731
    step = rec["cpu" if suffix else "wall"]
    out = {"generation": g("generation"), "reward": g("reward"), "teacher_pass": g("teacher_pass"),
           "other_scoring": g("scoring") - g("generation") - g("reward") - g("teacher_pass"),
           "student_forward": g("loss") - g("diagnostics"), "backward": g("backward"), "optimizer": g("optimizer"),
           "diagnostics": g("diagnostics")}
    out["rest"] = step - sum(out.values())
    return out


def step_rows(log: list[dict]) -> list[dict]:
    """The ratios against their bounds (median of per-round ratios, range) and the per-phase split."""
    rounds = sorted({r["round"] for r in log if r["round"] > 0})
    by = {(r["round"], r["contender"]): r for r in log}
    rows = []
    for clock in ("wall", "cpu"):
        suffix = "_cpu" if clock == "cpu" else ""
        def t(k, m, c=clock):
            return by[k, m][c]

        def teacher(k, m, s=suffix):
            return by[k, m].get("teacher_pass" + s, 0.0)

        pairs = {"grpo / trl_grpo": lambda k: t(k, "grpo") / t(k, "trl_grpo")}
        for m in ("tgpo", "rkl", "kdrl"):
            pairs[f"{m} / (grpo + teacher pass)"] = lambda k, m=m: t(k, m) / (t(k, "grpo") + teacher(k, m))
            pairs[f"{m} / grpo"] = lambda k, m=m: t(k, m) / t(k, "grpo")
        for name, f in pairs.items():
            values = [f(k) for k in rounds]
            rows.append({"section": "ratio", "name": name, "clock": clock, "value": statistics.median(values),
                         "low": min(values), "high": max(values), "n": len(values), "unit": "median of per-round ratios"})
    for name in CONTENDERS:
        recs = [by[k, name] for k in rounds]
        for clock, suffix in (("wall", ""), ("cpu", "_cpu")):
            rows.append({"section": "step", "name": name, "clock": clock,
                         "value": statistics.median(r[clock] for r in recs), "unit": "s per step (median)"})
            split = [_split(r, suffix) for r in recs]
            for phase in PHASES:
                rows.append({"section": "phase", "name": name, "clock": clock, "phase": phase,
                             "value": statistics.fmean(s[phase] for s in split), "unit": "s per step (mean)"})
    return rows + share_rows(log, rounds)


def share_rows(log: list[dict], rounds: list[int]) -> list[dict]:
    """The guidance-share diagnostic's cost: CPU seconds on the TGPO steps that measure it (the trainer's default
    cadence, every ``guidance_share_every``-th step), and that cost spread over the cadence as a fraction of TGPO's
    median step (issue 26's bound: 1%)."""
    from tgpo import TGPOConfig

    every = TGPOConfig.__dataclass_fields__["guidance_share_every"].default
    tgpo = [r for r in log if r["contender"] == "tgpo" and r["round"] in rounds]
    measured = [r["diagnostics_cpu"] for r in tgpo if r.get("diagnostics_cpu", 0.0) > 0.0]
    if not measured:
        return []
    cost, step = statistics.median(measured), statistics.median(r["cpu"] for r in tgpo)
    return [{"section": "share", "name": "cost per measured step", "clock": "cpu", "value": cost, "n": len(measured),
             "unit": "s"},
            {"section": "share", "name": f"amortised over every {every} steps / tgpo step", "clock": "cpu",
             "value": cost / every / step, "n": len(measured), "unit": "fraction of a step"}]


# ------------------------------------------------------------------------------------------ the head
def head_cost(hidden: int, positions: int, rounds: int) -> list[dict]:
    """The student's head at V = 152,064, forward + backward: TRL's fused head alone; with ``lp_g`` from a second
    fused-kernel pass (before issue 26); with ``lp_g`` from the shared log-sum-exp (tgpo.head)."""
    import torch
    from trl.kernels import ChunkedLogProbFunction

    from bench.probes import track_allocations
    from tgpo.head import second_target_logps

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    weight = (torch.randn(VOCAB_LARGE, hidden, generator=g) * 0.02).requires_grad_(True)
    h0 = torch.randn(1, positions, hidden, generator=g)
    sampled, teacher = (torch.randint(0, VOCAB_LARGE, (1, positions), generator=g) for _ in range(2))

    def fused(h, targets):
        lp, ent = ChunkedLogProbFunction.apply(h.reshape(-1, hidden), weight, None, targets.reshape(-1), 0.6, 32768,
                                               None, 1.0, ("log_probs", "entropy"))[:2]
        return lp.view(targets.shape), ent.view(targets.shape)

    def variant(kind):
        h = h0.clone().requires_grad_(True)
        lp, ent = fused(h, sampled)
        loss = -lp.mean() - 0.001 * ent.mean()
        if kind == "second_pass":
            lp_g = ChunkedLogProbFunction.apply(h.reshape(-1, hidden), weight, None, teacher.reshape(-1), 0.6, 32768,
                                                None, 1.0, ("log_probs",))[0]
            loss = loss - 0.05 * lp_g.mean()
        elif kind == "shared_lse":
            loss = loss - 0.05 * second_target_logps(lp, h, weight, None, teacher, sampled, 0.6).mean()
        loss.backward()
        weight.grad = None

    kinds = ["fused_only", "second_pass", "shared_lse"]
    variant("fused_only")  # warm-up
    times = {k: [] for k in kinds}
    for r in range(rounds):
        for k in (kinds if r % 2 == 0 else kinds[::-1]):
            t0 = time.thread_time()
            variant(k)
            times[k].append(time.thread_time() - t0)
    rows = []
    for k in kinds:
        with track_allocations() as stats:
            variant(k)
        rows.append({"section": "head", "name": k, "value": statistics.median(times[k]), "low": min(times[k]),
                     "high": max(times[k]), "unit": f"CPU s fwd+bwd (median of {rounds})", "peak_mib": stats.peak_bytes / 2**20,
                     "shape": f"N={positions},H={hidden},V={VOCAB_LARGE}"})
        print(f"[bench] head {k}: {rows[-1]['value']:.3f} s, peak {rows[-1]['peak_mib']:.0f} MiB", flush=True)
    return rows + head_ratio_rows(times)


def head_ratio_rows(times: dict) -> list[dict]:
    """Per-round ratios of the head variants to the fused head alone (median, range)."""
    out = []
    for k in ("second_pass", "shared_lse"):
        values = [a / b for a, b in zip(times[k], times["fused_only"])]
        out.append({"section": "head_ratio", "name": f"{k} / fused_only", "value": statistics.median(values),
                    "low": min(values), "high": max(values), "n": len(values), "unit": "median of per-round ratios"})
    return out


# ----------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=output_folder, default=OUT)
    parser.add_argument("--rounds", type=positive_int, default=10,
                        help="timed rounds of the interleaved steps (after one warm-up)")
    parser.add_argument("--identical", action="store_true", help="every step from the same weights and seed")
    parser.add_argument("--reward", choices=("real", "cheap"), default="real")
    parser.add_argument("--head-hidden", type=positive_int, default=256)
    parser.add_argument("--head-positions", type=positive_int, default=256)
    parser.add_argument("--head-rounds", type=positive_int, default=5)
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="also the teacher-pass memory sections (several minutes)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, a small head, no memory sections (a smoke run)")
    parser.add_argument("--report-only", action="store_true", help="rewrite README.md from bench.csv and manifest.json")
    parser.add_argument("--note", default="", help="a sentence for the README about the conditions of this run")
    args = parser.parse_args(argv)
    if args.report_only:
        for name in ("bench.csv", "manifest.json"):
            if not (args.output_dir / name).is_file():
                parser.error(f"--report-only: {args.output_dir / name} not found (a measuring run writes it)")
        try:
            manifest = json.loads((args.output_dir / "manifest.json").read_text())
        except json.JSONDecodeError as err:
            parser.error(f"--report-only: {args.output_dir / 'manifest.json'}: not JSON ({err})")
        return _report_only(args.output_dir, manifest, args.note)
    from tgpo.lab.models import model_path

    for name in ("student", "teacher_cross"):  # the contenders' models, checked before any of them loads
        if not (model_path(name) / "config.json").is_file():
            parser.error(f"lab model {name!r} is not built ({model_path(name)}); build it with: "
                         f"tgpo lab build --only {name}")
    import tempfile

    if args.quick:
        args.rounds, args.head_positions, args.head_rounds, args.memory = 2, 64, 2, False
    config = {"rounds": args.rounds, "identical": args.identical, "reward": args.reward,
              "head_hidden": args.head_hidden, "head_positions": args.head_positions, "head_rounds": args.head_rounds,
              "memory": args.memory, "threads": 1, "quick": args.quick, "note": args.note,
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        log = interleaved_steps(args.rounds, args.identical, args.reward, Path(tmp))
    with open(out / "steps.json", "w") as fh:  # at once: the slower sections below must not be able to lose it
        json.dump(log, fh, indent=0)
    rows = step_rows(log)
    for r in rows:
        if r["section"] == "ratio":
            print(f"[bench] {r['name']:<32} {r['clock']:<4} {r['value']:.3f} [{r['low']:.3f}-{r['high']:.3f}]", flush=True)
    rows += head_cost(args.head_hidden, args.head_positions, args.head_rounds)
    if args.memory:
        chunk_tokens = 512
        rows += teacher_memory_cpu([1, 2], PAPER_PROMPT, PAPER_COMPLETION, chunk_tokens)
        rows += paper_teacher_projection([1, 2, 4, 8, 16], chunk_tokens)
        rows += position_vs_row_chunks(2, 2048, 5)
    config["teacher_chunk_tokens"], config["memory_prompt"], config["memory_completion"] = 512, PAPER_PROMPT, PAPER_COMPLETION
    config["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    keys = ["section", "name", "clock", "phase", "value", "unit"]
    keys += sorted({k for r in rows for k in r} - set(keys))
    with open(out / "bench.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in keys})
    _plot(rows, out / "bench.png")
    _write_manifest(out, config, t_start)
    _readme(rows, out, time.time() - t_start, config)
    print(f"[bench] wrote {out}/bench.csv, steps.json, bench.png, README.md, manifest.json in {time.time() - t_start:.0f} s")
    return 0


def _report_only(out: Path, manifest: dict, note: str = "") -> int:
    """README and plot again from stored figures (after editing their wording), without measuring anything;
    ``manifest``: ``out``'s manifest.json, already read; ``note`` (when given) replaces its sentence about the run's
    conditions."""
    def typed(v: str):
        try:
            return float(v)
        except ValueError:
            return {"True": True, "False": False}.get(v, v)

    with open(out / "bench.csv", newline="") as fh:
        rows = [{k: typed(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]
    for r in rows:
        if "rows" in r:
            r["rows"] = int(r["rows"])
    steps = out / "steps.json"
    if steps.is_file():  # the step sections are derived from the per-step records: recompute them (new rows included)
        log = json.loads(steps.read_text())
        rows = step_rows(log) + [r for r in rows if r["section"] not in {"ratio", "step", "phase", "share"}]
    if note:
        manifest["config"]["note"] = note
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    _plot(rows, out / "bench.png")
    _readme(rows, out, manifest["wall_time_s"], manifest["config"])
    return 0


def _write_manifest(out: Path, config: dict, started: float) -> None:
    """How the figures were made: command, git sha, versions, machine, settings (tgpo.provenance)."""
    import platform
    from datetime import datetime, timezone

    from tgpo.provenance import git_sha, package_versions

    record = {"script": "bench/trainer.py", "command": " ".join(["python -m bench.trainer", *sys.argv[1:]]),
              "git_sha": git_sha(),
              "started_utc": datetime.fromtimestamp(started, tz=timezone.utc).isoformat(timespec="seconds"),
              "wall_time_s": round(time.time() - started, 1),
              "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
              "versions": package_versions(), "config": config}
    (out / "manifest.json").write_text(json.dumps(record, indent=2) + "\n")


def _sec(rows, section):
    return [r for r in rows if r["section"] == section]


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(15, 5.5))
    ax = axes[0]
    ratios = [r for r in _sec(rows, "ratio") if "teacher pass" in r["name"] or "trl" in r["name"]]
    for i, clock in enumerate(("wall", "cpu")):
        pts = [r for r in ratios if r["clock"] == clock]
        x = [j + (i - 0.5) * 0.3 for j in range(len(pts))]
        ax.errorbar(x, [r["value"] for r in pts], yerr=[[r["value"] - r["low"] for r in pts],
                                                        [r["high"] - r["value"] for r in pts]],
                    fmt="o", capsize=4, label=f"{clock} time")
    names = [r["name"] for r in ratios if r["clock"] == "wall"]
    ax.axhline(1.0, color="k", ls="--", lw=1, label="bound")
    ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
    ax.set_ylabel("median of per-round ratios [range]")
    ax.set_title("Step cost against its bound (lab recipe, interleaved)")
    ax.legend(fontsize=8)
    ax = axes[1]
    steps = [r for r in _sec(rows, "phase") if r["clock"] == "wall"]
    contenders = list(dict.fromkeys(r["name"] for r in steps))
    bottom = [0.0] * len(contenders)
    for phase, color in zip(PHASES, plt.cm.tab10.colors):
        vals = [next(r["value"] for r in steps if r["name"] == c and r["phase"] == phase) for c in contenders]
        ax.bar(range(len(contenders)), vals, bottom=bottom, color=color, label=phase)
        bottom = [b + max(v, 0.0) for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(contenders)), contenders)
    ax.set_ylabel("seconds per step (mean, wall)")
    ax.set_title("Where a step goes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _readme(rows, out: Path, wall: float, config: dict) -> None:
    load0, load1 = config["load_average_at_start"][0], config.get("load_average_at_end", [float("nan")])[0]
    lines = ["# Bench: what the trainer costs against its bounds (CPU)", "",
             "Made by `nox -s bench` (`python -m bench.trainer`); figures in `bench.csv` (every step in `steps.json`), "
             f"plot `bench.png`, provenance (command, git sha, versions, settings) `manifest.json`. Wall time {wall:.0f} s "
             f"on {os.cpu_count()} CPU cores, one torch thread; load average {load0:.1f} at the start and {load1:.1f} at "
             "the end (other processes were running: they slow the steps, and the interleaving spreads their load over "
             "every contender alike)." + (f" {config['note']}" if config.get("note") else ""), "",
             "## Step cost against its bound (interleaved in one process)", "",
             f"The lab's recipe: its student and cross-family teacher, 64 prompts x 8 rollouts, T = 0.6, 64 new tokens, the "
             f"{'real (Math-Verify) reward' if config['reward'] == 'real' else 'cheap parity reward'}, the lab's "
             "diagnostics on (agreement per token class; the guidance share every 10 steps, the default), TGPO's weight "
             "held constant so every step runs the teacher. The five contenders take turns one optimizer step at a "
             f"time, the order rotated and reversed every round; {config['rounds']} timed rounds after one warm-up"
             + (", every step from the same weights and seed (identical rollouts)" if config["identical"] else
                ", each contender training on (its own rollouts)") +
             ". A ratio is the median of the per-round ratios, [min-max] over rounds; CPU time is the thread's.", "",
             "| ratio | bound | wall | CPU |", "|---|---|---|---|"]
    ratio = {(r["name"], r["clock"]): r for r in _sec(rows, "ratio")}
    for name in dict.fromkeys(r["name"] for r in _sec(rows, "ratio")):
        bound = "1.0" if "trl" in name or "teacher pass" in name else "-"
        cells = [f"{ratio[name, c]['value']:.3f} [{ratio[name, c]['low']:.2f}-{ratio[name, c]['high']:.2f}]"
                 for c in ("wall", "cpu")]
        lines.append(f"| {name} | {bound} | {cells[0]} | {cells[1]} |")
    g = ratio.get(("grpo / trl_grpo", "cpu"))
    t = ratio.get(("tgpo / (grpo + teacher pass)", "cpu"))
    if g and t:
        lines += ["", f"Targets (CPU time): suite GRPO / TRL GRPO = 1.00 ± 0.03: **{g['value']:.3f}** "
                  f"({'met' if abs(g['value'] - 1) <= 0.03 else 'NOT met'}); TGPO / (GRPO + teacher pass) <= 1.03: "
                  f"**{t['value']:.3f}** ({'met' if t['value'] <= 1.03 else 'NOT met'})."]
    lines += ["", "## Where a step goes (mean seconds per step, wall)", "",
              "| contender | step (median) | " + " | ".join(PHASES) + " |", "|---|---|" + "---|" * len(PHASES)]
    for name in CONTENDERS:
        step = next(r["value"] for r in _sec(rows, "step") if r["name"] == name and r["clock"] == "wall")
        ph = {r["phase"]: r["value"] for r in _sec(rows, "phase") if r["name"] == name and r["clock"] == "wall"}
        lines.append(f"| {name} | {step:.3f} | " + " | ".join(f"{ph[p]:.3f}" for p in PHASES) + " |")
    lines += ["", "Student forward = the loss hook minus the diagnostics; rest = the step minus the named phases "
              "(the data loader, logging, Trainer's bookkeeping; gradient clipping is in it)."]
    share = {r["name"]: r for r in _sec(rows, "share")}
    if share:
        cost, frac = share["cost per measured step"], next(r for n, r in share.items() if n.startswith("amortised"))
        lines += ["", f"Guidance-share diagnostic (TGPO, CPU): {cost['value']:.3f} s on each step that measures it "
                  f"({int(cost['n'])} timed); {frac['name']}: **{100 * frac['value']:.2f}%** "
                  f"(target <= 1%: {'met' if frac['value'] <= 0.01 else 'NOT met'})."]
    head = _sec(rows, "head")
    if head:
        hr = {r["name"]: r for r in _sec(rows, "head_ratio")}
        lines += ["", f"## The student's head at V = {VOCAB_LARGE:,} ({head[0]['shape']}, float32, CPU)", "",
                  "TRL's fused head (log-prob of the sampled token and entropy, forward and backward) alone; with the "
                  "log-prob of the teacher's token from a second fused-kernel pass (the trainer before issue 26); from "
                  "the shared log-sum-exp (`tgpo.head`). CPU seconds, variants interleaved; peak of torch's "
                  "allocations.", "", "| variant | CPU s | peak MiB | / fused head alone |", "|---|---|---|---|"]
        for r in head:
            q = hr.get(f"{r['name']} / fused_only")
            cell = f"{q['value']:.3f} [{q['low']:.3f}-{q['high']:.3f}]" if q else "1"
            lines.append(f"| {r['name']} | {r['value']:.3f} | {r['peak_mib']:.0f} | {cell} |")
        q = hr.get("shared_lse / fused_only")
        if q:
            lines += ["", f"Target: the lp_g gather adds <= 2% to the head's cost: **{100 * (q['value'] - 1):+.1f}%** "
                      f"({'met' if q['value'] <= 1.02 else 'NOT met'})."]
    if _sec(rows, "teacher_memory_cpu"):
        _readme_memory(rows, config, lines)
    else:
        lines += ["", "## Teacher-pass memory", "", "Not measured in this run (`python -m bench.trainer --memory`)."]
    scorer = _scorer_rows(out)
    lines += ["", "## Scorer throughput", ""]
    if scorer:
        lines += ["From `scorer.csv` (`python -m bench.grader`):", "", "| " + " | ".join(scorer[0]) + " |",
                  "|" + "---|" * len(scorer[0])]
        lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in scorer]
    else:
        lines.append("Not measured here: `python -m bench.grader` writes `scorer.csv`.")
    lines += _gpu_section(out)
    (out / "README.md").write_text("\n".join(lines) + "\n")


def _readme_memory(rows, config: dict, lines: list[str]) -> None:
    """The teacher-pass memory sections (run with ``--memory``)."""
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
              "the peak, and tiling the head cannot shrink them. The paper configs' chunks (repro/configs/paper/base/"
              "base.yaml): 4 rows, 512 positions, 6.5 GB beside the weights."]

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


# -------------------------------------------------------------------------------------- teacher memory
def _probe(**kwargs) -> list[dict]:
    from bench.probes import in_fresh_process, teacher_pass_probe

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
    from bench.probes import in_fresh_process, layer_probe
    from tgpo.plan import KNOWN_MODELS
    from tgpo.teacher import decoder_layer_width, teacher_pass_peak_bytes

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
    """bench/grader.py's figures, if it has run."""
    f = out / "scorer.csv"
    if not f.exists():
        return []
    with open(f, newline="") as fh:
        return list(csv.DictReader(fh))



def _gpu_section(out: Path) -> list[str]:
    """The figures of the last GPU check (repro/launch/gpu_check.sh), copied to results/bench/gpu/, if any."""
    f = out / "gpu" / "gpu_check.json"
    if not f.exists():
        return []
    d = json.loads(f.read_text())
    lines = ["", f"## Superseded: the first GPU check ({d.get('device')}, torch {d.get('torch')}, git "
             f"{d.get('git_sha', 'unrecorded')}; `gpu/gpu_check.json`)", "",
             "**Superseded** by the interleaved ratios above: these figures come from the first turn's GPU check, "
             "which timed sequential runs and took the upper median of 4 steps (its GRPO came out slower than its "
             "TGPO). Kept as a record, not as a measurement of the current trainer.", ""]
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
