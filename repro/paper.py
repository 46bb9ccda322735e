"""The ``paper`` profile of the table scripts: the paper's Qwen runs through ``tgpo train`` (launched with
``repro/launch/train_paper.sh``: accelerate + FSDP/DeepSpeed, vLLM) and scored with ``tgpo eval``.

It needs a node of 8 GPUs, the Hugging Face Hub and the ``vllm`` extra. Without them it stops with a clear
message; ``--dry-run`` prints the whole plan (every training run's resolved config) on any machine.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from common import CONFIGS, REPO, RESULTS, Manifest, load_profile_config, prepare_output_dir
from tables import row_label

PAPER_CONFIGS = CONFIGS / "paper"


def _requirements_missing() -> list[str]:
    import importlib.util

    import torch

    missing = []
    if not torch.cuda.is_available():
        missing.append("CUDA GPUs (the paper trains on one node of 8 x 80 GB)")
    if importlib.util.find_spec("vllm") is None:
        missing.append("the vllm extra (`pip install tgpo[vllm]`)")
    return missing


def _plan(cfg: dict, name: str, out_dir: Path) -> list[tuple[str, list[str] | None, list[str]]]:
    """``(row, train command or None, eval command)`` for every row of the table."""
    steps = []
    for row in cfg["rows"]:
        if row == "base":
            model, train = cfg["student"], None
        else:
            config = PAPER_CONFIGS / cfg["runs"][row]
            from tgpo.train_cli import load_config

            model = load_config(config)["trainer"]["output_dir"]
            train = ["bash", "repro/launch/train_paper.sh", str(config.relative_to(REPO))]
        evaluate = ["tgpo", "eval", "--model", model, "--backend", cfg["eval"]["backend"], "--tasks",
                    cfg["eval"]["tasks"], "--model-args", cfg["eval"].get("model_args", ""),
                    "--output-dir", str(out_dir / f"{name}_eval" / row)]
        steps.append((row, train, evaluate))
    return steps


def run_paper_table(args, name: str, outputs: list[str]) -> int:
    cfg = load_profile_config("paper", name)
    out_dir = args.output_dir or RESULTS / "paper"
    steps = _plan(cfg, name, out_dir)
    if args.dry_run:
        from tgpo.cli import main as tgpo_main

        for row, train, evaluate in steps:
            print(f"\n=== {name} / {row} ===")
            if train:
                print("train:", " ".join(train))
                rc = tgpo_main(["train", "--config", train[-1], "--dry-run"])
                if rc:
                    return rc
            print("eval: ", " ".join(evaluate))
        return 0
    missing = _requirements_missing()
    if missing:
        print(f"[{name}] the paper profile cannot run on this machine: it needs " + "; ".join(missing) + ".\n"
              f"  Its plan: python repro/{name}.py --profile paper --dry-run\n"
              "  Launch recipes (one node, SLURM): repro/launch/README.md\n"
              "  On a CPU, the lab profile runs the same trainer and evaluation: nox -s reproduce_" + name,
              file=sys.stderr)
        return 2
    prepare_output_dir(out_dir, outputs)
    manifest = Manifest(script=f"repro/{name}.py", profile="paper", seeds=[0], config=cfg)
    records = []
    for row, train, evaluate in steps:
        if train:
            subprocess.run(train, cwd=REPO, check=True)
        subprocess.run(evaluate, cwd=REPO, check=True)
        with open(evaluate[-1] + "/summary.csv") as fh:
            scores = {r["task"]: float(r["pass@1"]) for r in csv.DictReader(fh)}
        records.append({"method": row, "seed": 0, "scores": scores, "curves": [], "extra": {"row": row_label(cfg, row)}})
    from table1 import write_table

    print(write_table(records, {**cfg, "eval": {**cfg["eval"], "limit": None}}, out_dir,
                      f"{name} — paper profile", name,
                      reported_benchmarks=[t.removeprefix("tgpo_") for t in cfg["columns"]],
                      reported_models=cfg.get("reported_models")))
    manifest.write(out_dir, f"{name}_manifest.json")
    return 0
