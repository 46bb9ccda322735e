"""The paper profile's runs: each table row's training config through ``tgpo train`` (launched with
``repro/launch/train_paper.sh``: accelerate + FSDP/DeepSpeed, vLLM), then ``tgpo eval``.

It needs a node of 8 GPUs, the Hugging Face Hub and the ``vllm`` extra. :func:`requirements_missing` says what is
absent; ``--dry-run`` prints the whole plan (every training run's resolved config, with the preset) on any machine.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from repro.records import read_eval_dir

REPO = Path(__file__).resolve().parents[1]


@dataclass
class PaperRun:
    """One (row, seed) of a paper table: the training command (None for the base student) and the evaluation."""

    row: str
    label: str
    variant: str | None
    method: str
    seed: int
    preset: str
    config: Path | None
    model: str
    train: list[str] | None
    evaluate: list[str]  # the equivalent `tgpo eval` command, printed by the plan
    eval_dir: Path
    eval_options: dict  # tgpo.eval.evaluate's arguments, what :func:`run` calls


def requirements_missing() -> list[str]:
    import importlib.util

    import torch

    missing = []
    if not torch.cuda.is_available():
        missing.append("CUDA GPUs (the paper trains on one node of 8 x 80 GB)")
    if importlib.util.find_spec("vllm") is None:
        missing.append("the vllm extra (`pip install tgpo[vllm]`)")
    return missing


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def plan_run(table, row, seed: int, preset: str, eval_root: Path) -> PaperRun:
    """The commands of one row and seed. A run whose preset or seed differs from its config's trains into its own
    folder (``<output_dir>-<preset>``, ``-s<seed>``), so runs never overwrite each other."""
    from tgpo.run_config import load_run_config

    train = None
    model = str(table.student)
    if row.config is not None:
        run = load_run_config(row.config, check_paths=False)
        suffix = ("" if preset == run.preset else f"-{preset}") + ("" if seed == run.trainer.get("seed", 0) else f"-s{seed}")
        model = run.trainer["output_dir"] + suffix
        train = ["bash", "repro/launch/train_paper.sh", _relative(row.config), "--preset", preset]
        if suffix:
            train += ["--output-dir", model, "--set", f"trainer.seed={seed}"]
    eval_dir = eval_root / (row.key if seed == 0 else f"{row.key}-s{seed}")
    options = {"model": model, "backend": table.eval["backend"], "tasks": table.eval["tasks"],
               "model_args": table.eval.get("model_args", ""), "seed": seed, "output_dir": _relative(eval_dir)}
    evaluate = ["tgpo", "eval", "--model", model, "--backend", options["backend"], "--tasks", options["tasks"],
                "--model-args", options["model_args"], "--seed", str(seed), "--output-dir", options["output_dir"]]
    return PaperRun(row=row.key, label=row.label, variant=row.variant, method=row.method, seed=seed, preset=preset,
                    config=row.config, model=model, train=train, evaluate=evaluate, eval_dir=eval_dir,
                    eval_options=options)


def print_plan(runs: list[PaperRun]) -> int:
    """Every run's commands, and ``tgpo train --dry-run`` of every training config (its resolved plan)."""
    from tgpo.plan import build_plan, render_plan
    from tgpo.run_config import load_run_config

    for run in runs:
        print(f"\n=== {run.label} (seed {run.seed}, preset {run.preset}) ===")
        if run.train:
            print("train:", " ".join(run.train))
            try:  # what `tgpo train --dry-run` prints
                print(render_plan(build_plan(load_run_config(run.config, preset=run.preset, check_paths=False))))
            except Exception as err:  # noqa: BLE001 - one line, as the dry run gives it
                print(f"tgpo train: error: {err}")
                return 2
        print("eval: ", " ".join(run.evaluate))
    return 0


def run(runs: list[PaperRun]) -> list[dict]:
    """Train and evaluate every run in turn; records as :mod:`repro.records` describes."""
    from tgpo.eval import evaluate

    records = []
    for item in runs:
        if item.train:
            subprocess.run(item.train, cwd=REPO, check=True)
        result = evaluate(**{**item.eval_options, "output_dir": REPO / item.eval_options["output_dir"]})
        if result.status:
            raise RuntimeError(f"tgpo eval of {item.model} ended incomplete; rerun to fill in {item.eval_dir}")
        scores, problems = read_eval_dir(item.eval_dir)
        records.append({"row": item.row, "label": item.label, "variant": item.variant, "method": item.method,
                        "seed": item.seed, "preset": item.preset, "config": str(item.config) if item.config else None,
                        "model": item.model, "scores": scores, "problems": problems, "curves": [],
                        "train_seconds": None, "eval_seconds": None})
    return records
