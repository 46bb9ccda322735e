"""MKL's code branch and the lab's numbers: ``python -m bench.mkl_branch [--rounds 3 --passes 10]``.

The lab pins MKL to its AVX2 branch (``tgpo.lab.kernels``: ``MKL_CBWR=AVX2``), a setting MKL honours only on Intel
CPUs: elsewhere it silently takes its own branch. This bench measures what the branch does to the lab's arithmetic on
the machine it runs on: for each branch (``AVX2``, the pin; ``AUTO``, MKL's own choice; ``COMPATIBLE``, the one
branch MKL keeps on every vendor), in a fresh process (MKL reads the variable once), one forward and backward pass of
the lab student on a fixed batch of the RL recipe's size (512 sequences): the loss and the gradient norm, written
exactly (hex), so equal bits show as equal text, and the time per pass (wall and CPU). Each round runs every branch
once, the order rotated between rounds; the table shows the median over rounds.

Writes ``results/bench/mkl_branch.md`` and ``results/bench/mkl_branch.json`` (``--output-dir`` moves them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from tgpo.cli import OneLineParser, output_folder, positive_int
from tgpo.lab.kernels import KERNEL_ENV

BRANCHES = ("AVX2", "AUTO", "COMPATIBLE")
#: The batch: the lab recipe's 512 completions per step, each prompt + completion about 40 tokens.
BATCH, LENGTH = 512, 40
RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench"
PROG = "python -m bench.mkl_branch"


def one_branch(passes: int) -> dict:
    """In this process (MKL_CBWR already set): the student's loss and gradient norm on the fixed batch, and the
    seconds per forward + backward pass (after one warm-up pass)."""
    import torch

    from tgpo.lab import models

    model, tokenizer = models.load("student")
    model.train()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, len(tokenizer), (BATCH, LENGTH), generator=generator)

    def step():
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        return loss

    loss = step()
    norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None))
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(passes):
        step()
    return {"branch": os.environ.get("MKL_CBWR"), "loss": float(loss).hex(), "grad_norm": float(norm).hex(),
            "wall_s": (time.perf_counter() - wall) / passes, "cpu_s": (time.process_time() - cpu) / passes}


def measure(rounds: int, passes: int) -> pd.DataFrame:
    rows = []
    for r in range(rounds):
        order = BRANCHES[r % len(BRANCHES):] + BRANCHES[:r % len(BRANCHES)]
        for branch in order:
            env = {**os.environ, **KERNEL_ENV, "MKL_CBWR": branch}
            done = subprocess.run([sys.executable, "-m", "bench.mkl_branch", "--worker", "--passes", str(passes)],
                                  env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}, no output"]
                print(f"{PROG}: error: the {branch} worker failed: {tail[0]}", file=sys.stderr)
                raise SystemExit(2)
            rows.append({"round": r, **json.loads(done.stdout.strip().splitlines()[-1])})
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    pinned = frame[frame.branch == "AVX2"].grad_norm.iloc[0]
    out = frame.groupby("branch", sort=False).agg(loss=("loss", "first"), grad_norm=("grad_norm", "first"),
                                                  runs_agree=("grad_norm", lambda g: g.nunique() == 1),
                                                  wall_s=("wall_s", statistics.median), cpu_s=("cpu_s", statistics.median))
    out["same_bits_as_pin"] = out.grad_norm == pinned
    out["time_vs_pin"] = out.wall_s / out.loc["AVX2", "wall_s"]
    return out.loc[list(BRANCHES)]


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=positive_int, default=3, help="rounds; each runs every branch once, order rotated")
    parser.add_argument("--passes", type=positive_int, default=10, help="timed forward + backward passes per process")
    parser.add_argument("--output-dir", type=output_folder, default=RESULTS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(one_branch(args.passes)))
        return 0
    from repro.manifest import machine
    from tgpo.provenance import git_sha

    frame = measure(args.rounds, args.passes)
    table = summary(frame)
    where = machine()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "mkl_branch.json").write_text(json.dumps(
        {"command": "python -m bench.mkl_branch " + " ".join(argv if argv is not None else sys.argv[1:]),
         "git_sha": git_sha(Path(__file__).resolve().parents[1]), "machine": where,
         "runs": frame.to_dict(orient="records")}, indent=2) + "\n")
    shown = table.assign(wall_s=table.wall_s.map("{:.3f}".format), cpu_s=table.cpu_s.map("{:.3f}".format),
                         time_vs_pin=table.time_vs_pin.map("{:.2f}x".format))
    text = (f"# MKL's code branch and the lab's arithmetic\n\n`python -m bench.mkl_branch` on {where['cpu_model']} "
            f"({where['cpu_vector_isa']}), the other kernels pinned as in the lab (tgpo/lab/kernels.py): one forward "
            f"and backward pass of the lab student on a fixed batch of {BATCH} x {LENGTH} tokens per branch, "
            f"{args.rounds} rounds in rotated order, {args.passes} timed passes each (median over rounds). Loss and "
            f"gradient norm exactly, as hex: equal text, equal bits.\n\n"
            f"{shown.rename_axis('MKL_CBWR').to_markdown(disable_numparse=True)}\n")
    (args.output_dir / "mkl_branch.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
