"""``tgpo lab``: the CPU divergence lab's data and models.

    tgpo lab data  OUT.jsonl [--split rl_train] [--n 8000] [--seed 0]
    tgpo lab build [--models-dir DIR] [--only NAME ...] [--force]
    tgpo lab list  [--models-dir DIR]
    tgpo lab measure NAME ... [--models-dir DIR]
    tgpo lab eval  NAME_OR_FOLDER [--models-dir DIR] [--splits rl_train id hard ood] [--temperature 0.0] [--show 3]

``data`` writes a split as the JSONL a run config's ``dataset.path`` reads (``examples/lab_tgpo.yaml``). ``build``
pre-trains the default models (student, student_small, teacher_in, teacher_cross), or the ones named with ``--only``
(any registry name, or ``teacher_t<share>`` with a share in [0, 1] for a divergence sweep, e.g. ``teacher_t0.3``),
and skips a model whose stored ``build_info.json`` has the same config hash. Models are read from and written to
``--models-dir``, else ``$TGPO_LAB_MODELS``, else the package's own folder (``tgpo/lab/zoo``; writable in an
editable checkout). ``--out`` is the deprecated spelling of ``--models-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

#: Where the models folder came from, for error messages (the user must know what to change).
ENV = "TGPO_LAB_MODELS"


class LabError(Exception):
    """Bad input to ``tgpo lab``: one line, exit code 2."""


class _DeprecatedOut(argparse.Action):
    """``--out``: the old spelling of ``--models-dir`` (it never meant an output), accepted with a note."""

    def __call__(self, parser, namespace, values, option_string=None):
        print("tgpo lab: note: --out is deprecated; use --models-dir", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _models_dir_option(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--models-dir", dest="models_dir", metavar="DIR", default=None,
                        help=f"folder the lab models are {verb} (default: ${ENV}, else the package's tgpo/lab/zoo)")
    parser.add_argument("--out", dest="models_dir", metavar="DIR", action=_DeprecatedOut,
                        help="deprecated spelling of --models-dir")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tgpo.lab.world import EVAL_SPLITS

    splits = ["rl_train", *EVAL_SPLITS]
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    d = sub.add_parser("data", help="write the lab's RL training data (or an eval split) as JSONL for tgpo train",
                       description="Write a lab split as JSONL rows {prompt, answer, teacher_completion}: the file a "
                                   "run config's dataset.path reads (examples/lab_tgpo.yaml).")
    d.add_argument("path", metavar="OUT.jsonl", type=Path, help="file to write (its folder is created)")
    d.add_argument("--split", choices=splits, default="rl_train",
                   help="rl_train: i.i.d. training sums (k=4, never held out); id/hard/ood: the fixed eval problems")
    d.add_argument("--n", type=_positive, default=None,
                   help="number of rows (default: 8000 for rl_train, i.e. 125 steps x 64 prompts; the split's "
                        "fixed size for an eval split)")
    d.add_argument("--seed", type=int, default=0, help="rl_train's data seed (eval splits are fixed)")

    b = sub.add_parser("build", help="pre-train the lab's tiny models (skips up-to-date ones)")
    _models_dir_option(b, "written to")
    b.add_argument("--only", nargs="+", metavar="NAME",
                   help="build only these models: registry names (tgpo lab list) or teacher_t<share>, share in [0, 1]")
    b.add_argument("--force", action="store_true", help="rebuild even if the config hash matches")
    ms = sub.add_parser("measure", help="recompute a built model's metrics in its build_info.json")
    ms.add_argument("names", nargs="+", metavar="NAME", help="built lab models to re-measure")
    _models_dir_option(ms, "read from")
    ls = sub.add_parser("list", help="list the lab's models and whether they are built and up to date")
    _models_dir_option(ls, "read from")
    e = sub.add_parser("eval", help="quick own evaluation of a lab model on the lab's splits")
    e.add_argument("model", metavar="NAME_OR_FOLDER", help="a lab model name (see tgpo lab list) or a model folder")
    _models_dir_option(e, "read from (for a NAME)")
    e.add_argument("--splits", nargs="+", choices=splits, default=splits, help="splits to evaluate on")
    e.add_argument("--temperature", type=_non_negative(float), default=0.0, help="sampling temperature (0: greedy)")
    e.add_argument("--seed", type=int, default=0, help="sampling seed (with --temperature > 0)")
    e.add_argument("--show", type=_non_negative(int), default=0, help="print this many completions per split")


def _positive(text: str) -> int:
    from tgpo.cli import positive_int

    return positive_int(text)


def _non_negative(kind: type):
    """An ``argparse`` type: a number of ``kind`` that is 0 or more (refused at parse time, before a model loads)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
        return value

    return parse


def run(args: argparse.Namespace) -> int:
    """One line and exit code 2 for an unknown or unbuilt model, a bad or unwritable models folder."""
    try:
        return _run(args)
    except (LabError, FileNotFoundError, KeyError, PermissionError, NotADirectoryError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"tgpo lab {args.lab_command}: error: {message}", file=sys.stderr)
        return 2


def models_dir(args: argparse.Namespace) -> tuple[Path, str]:
    """The models folder and where it came from (``--models-dir``, ``$TGPO_LAB_MODELS`` or the package); a folder
    that exists as a file is refused, naming its source."""
    from tgpo.lab import models as M

    given = getattr(args, "models_dir", None)
    source = "--models-dir" if given is not None else (f"${ENV}" if os.environ.get(ENV) else "the package's folder")
    folder = Path(given) if given is not None else M.default_models_dir()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise LabError(f"models folder {folder} (from {source}): {existing} is a file, not a folder")
    return folder, source


def _run(args: argparse.Namespace) -> int:
    if args.lab_command == "data":
        return _data(args)
    from tgpo.lab import kernels

    kernels.pin()  # build, measure and eval run the lab's pinned kernels, as every lab job does
    from tgpo.lab import config as C

    out, source = models_dir(args)
    if args.lab_command == "build":
        for name in args.only or []:
            C.get_model_config(name)  # an unknown name stops here, before anything is built
        target = out
        while not target.exists():
            target = target.parent
        if not os.access(target, os.W_OK):
            raise PermissionError(f"models folder {out} (from {source}) is not writable; pass --models-dir DIR or "
                                  f"set {ENV}")
        from tgpo.lab import models as M

        infos = M.build(args.only, out=out, force=args.force)
        for i in infos:
            state = "skipped" if i.get("skipped") else f"built in {i.get('build_seconds')}s"
            print(f"{i['name']}: {state}; metrics {json.dumps(i.get('metrics', {}))}")
        return 0
    from tgpo.lab import models as M

    if args.lab_command == "measure":
        for n in args.names:
            M.remeasure(n, out=out)
        return 0
    if args.lab_command == "list":
        if not out.exists():  # every model would read "not built": say why first
            print(f"(models folder {out} (from {source}) does not exist)")
        names = list(dict.fromkeys([*C.DEFAULT_MODELS, *C.MODELS, *_dirs(out)]))
        width = max(map(len, names))  # names in one column
        for n in names:
            try:
                cfg = C.get_model_config(n)
            except KeyError:
                print(f"{n:{width}s} (unknown config)")
                continue
            info = M.read_build_info(M.model_path(n, out)) or {}
            state = "up to date" if M.is_built(cfg, out) else ("stale" if info else "not built")
            print(f"{n:{width}s} {cfg.role:8s} {state:10s} {C.config_hash(cfg)}  {cfg.description}")
        return 0
    if args.lab_command == "eval":
        import torch

        torch.set_num_threads(1)
        from tgpo.lab import world as W

        model, tok = M.load(_eval_folder(args.model, out, source))
        for s in args.splits:
            rows = W.make_split(s, n=200, seed=10_000) if s == "rl_train" else W.make_split(s)
            r = M.evaluate(model, tok, rows, temperature=args.temperature, seed=args.seed)
            print(f"{s:9s} accuracy {r['accuracy']:.3f}  (n={r['n']}, mean {r['mean_len_chars']:.1f} chars)")
            for row, c, ok in list(zip(rows, r["completions"], r["correct"]))[: args.show]:
                print(f"    {row['prompt']}{c}   [{'ok' if ok else 'wrong'}; gold {row['answer']}]")
        return 0
    return 2


def _eval_folder(model: str, out: Path, source: str) -> Path:
    """The folder ``tgpo lab eval`` loads: a model folder as given, or a lab model by name from the models folder.
    Wrong input gets advice that fits it: a path that does not exist is not a model to build."""
    from tgpo.lab import config as C

    path = Path(model)
    if path.exists():
        if not (path / "config.json").exists():
            raise LabError(f"{model} is not a model folder (it has no config.json)")
        return path
    if os.sep in model or "/" in model or model.startswith("."):
        raise LabError(f"model folder {model} does not exist (a lab model is named without a path; see tgpo lab list)")
    C.get_model_config(model)  # unknown name: KeyError naming the known ones
    folder = out / model
    if not (folder / "config.json").exists():
        raise LabError(f"lab model {model!r} is not built in {out} (models folder from {source}); build it with: "
                       f"tgpo lab build --only {model}" + ("" if source == "the package's folder" else
                                                          f" --models-dir {out}"))
    return folder


def _data(args: argparse.Namespace) -> int:
    from tgpo.lab.world import write_jsonl

    path: Path = args.path
    if path.is_dir():
        raise LabError(f"{path} is a folder; name the JSONL file to write, e.g. {path / 'lab_train.jsonl'}")
    if path.parent.exists() and not path.parent.is_dir():
        raise LabError(f"cannot write {path}: {path.parent} is a file, not a folder")
    n = args.n if args.n is not None or args.split != "rl_train" else DEFAULT_RL_ROWS
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        count = write_jsonl(path, args.split, n=n, seed=args.seed if args.split == "rl_train" else None)
    except OSError as err:
        raise LabError(f"cannot write {path}: {err.strerror or err}") from None
    print(f"tgpo lab data: wrote {count} {args.split} rows to {path}")
    return 0


#: Rows ``tgpo lab data`` writes by default: 125 steps x 64 prompts, the lab's Table 1 recipe (examples/lab_*.yaml).
DEFAULT_RL_ROWS = 8000


def _dirs(out) -> list[str]:
    p = Path(out)
    return (
        sorted(d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")) if p.exists() else []
    )
