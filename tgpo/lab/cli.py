"""``tgpo lab``: build and inspect the CPU divergence lab.

    tgpo lab build [--out DIR] [--only NAME ...] [--force]
    tgpo lab list  [--out DIR]
    tgpo lab measure NAME ... [--out DIR]
    tgpo lab eval  NAME_OR_PATH [--splits id hard ood] [--temperature 0.6] [--show 3]

``build`` pre-trains the default models (student, student_small, teacher_in, teacher_cross), or the ones
named with ``--only`` (any registry name, or ``teacher_t<share>`` for a divergence sweep, e.g.
``teacher_t0.3``), and skips a model whose stored ``build_info.json`` has the same config hash. Models are read
from and written to ``--out``, else ``$TGPO_LAB_MODELS``, else the package's own folder (``tgpo/lab/zoo``; writable
in an editable checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="pre-train the lab's tiny models (skips up-to-date ones)")
    b.add_argument(
        "--out", default=None, help="models folder (default: $TGPO_LAB_MODELS, else the package's tgpo/lab/zoo)"
    )
    b.add_argument("--only", nargs="+", metavar="NAME", help="build only these models")
    b.add_argument("--force", action="store_true", help="rebuild even if the config hash matches")
    ms = sub.add_parser("measure", help="recompute a built model's metrics in its build_info.json")
    ms.add_argument("names", nargs="+")
    ms.add_argument("--out", default=None)
    ls = sub.add_parser("list", help="list the lab's models and whether they are built and up to date")
    ls.add_argument("--out", default=None)
    e = sub.add_parser("eval", help="quick own evaluation of a lab model on the lab's splits")
    e.add_argument("model", help="a lab model name or a model folder")
    e.add_argument("--out", default=None)
    e.add_argument("--splits", nargs="+", default=["rl_train", "id", "hard", "ood"])
    e.add_argument("--temperature", type=float, default=0.0)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--show", type=int, default=0, help="print this many completions per split")


def run(args: argparse.Namespace) -> int:
    """One line and exit code 2 for an unknown or unbuilt model and an unwritable models folder."""
    try:
        return _run(args)
    except (FileNotFoundError, KeyError, PermissionError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"tgpo lab {args.lab_command}: error: {message}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from tgpo.lab import config as C
    from tgpo.lab import models as M

    out = args.out if args.out is not None else M.default_models_dir()
    if args.lab_command == "build":
        for name in args.only or []:
            C.get_model_config(name)  # an unknown name stops here, before anything is built
        target = Path(out)
        while not target.exists():
            target = target.parent
        if not os.access(target, os.W_OK):
            raise PermissionError(f"models folder {out} is not writable; pass --out DIR or set TGPO_LAB_MODELS")
        infos = M.build(args.only, out=out, force=args.force)
        for i in infos:
            state = "skipped" if i.get("skipped") else f"built in {i.get('build_seconds')}s"
            print(f"{i['name']}: {state}; metrics {json.dumps(i.get('metrics', {}))}")
        return 0
    if args.lab_command == "measure":
        for n in args.names:
            M.remeasure(n, out=out)
        return 0
    if args.lab_command == "list":
        names = list(dict.fromkeys([*C.DEFAULT_MODELS, *C.MODELS, *_dirs(out)]))
        for n in names:
            try:
                cfg = C.get_model_config(n)
            except KeyError:
                print(f"{n:16s} (unknown config)")
                continue
            info = M.read_build_info(M.model_path(n, out)) or {}
            state = "up to date" if M.is_built(cfg, out) else ("stale" if info else "not built")
            print(f"{n:16s} {cfg.role:8s} {state:10s} {C.config_hash(cfg)}  {cfg.description}")
        return 0
    if args.lab_command == "eval":
        from tgpo.lab import world as W

        model, tok = M.load(args.model, root=out)
        for s in args.splits:
            rows = W.make_split(s, n=200, seed=10_000) if s == "rl_train" else W.make_split(s)
            r = M.evaluate(model, tok, rows, temperature=args.temperature, seed=args.seed)
            print(f"{s:9s} accuracy {r['accuracy']:.3f}  (n={r['n']}, mean {r['mean_len_chars']:.1f} chars)")
            for row, c, ok in list(zip(rows, r["completions"], r["correct"]))[: args.show]:
                print(f"    {row['prompt']}{c}   [{'ok' if ok else 'wrong'}; gold {row['answer']}]")
        return 0
    return 2


def _dirs(out) -> list[str]:
    p = Path(out)
    return (
        sorted(d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")) if p.exists() else []
    )
