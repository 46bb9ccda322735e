"""The ``tgpo`` command: one sub-command per job, each implemented in its own module.

Every sub-command module exposes ``add_arguments(parser)`` and ``run(args) -> int``; they are
imported only when chosen, so ``tgpo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number >= 1 (step counts, seed counts, workers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def output_folder(text: str) -> Path:
    """An ``argparse`` type: a folder to write into (made when missing). Refused at parse time, before any model
    loads, when the path or one of its parents is an existing file, or the nearest existing folder cannot be written
    (``mkdir`` or the first write would fail there only after the work is done)."""
    path = Path(text)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder{where}")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: {existing} is not writable")
    return path


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr (``PROG: error: MESSAGE``) and exit code 2,
    instead of argparse's usage block followed by the error: the suite's rule for bad input. Sub-parsers made with
    ``add_subparsers`` inherit the class, so one parser at the top covers every sub-command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


SUBCOMMANDS = {
    "train": ("tgpo.train_cli", "Train a student with TGPO (TGPO-Reg, TGPO-Adv) or a baseline (GRPO, RKL, KDRL, "
                                "LUFFY) from a YAML run config."),
    "eval": ("tgpo.eval.cli", "Score a checkpoint on the paper's benchmarks with the paper's protocol."),
    "align": ("tgpo.align", "Align a teacher's special tokens and embedding size to a student's (docs/method.md §2)."),
    "lab": ("tgpo.lab.cli", "The CPU divergence lab: write its data, build and list its tiny teacher/student models."),
}
#: What ``tgpo --help`` says (the module docstring is for developers).
DESCRIPTION = "Teacher-Guided Policy Optimization: train a student under a teacher, and evaluate it as the paper does."
EPILOG = ("Start on a CPU: tgpo lab data lab_train.jsonl && tgpo train --config examples/lab_tgpo.yaml. "
          "Run `tgpo COMMAND --help` for a command's options; docs/method.md describes the methods.")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    from tgpo import __version__

    parser = OneLineParser(prog="tgpo", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"tgpo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # only the chosen sub-command pays for its imports
            importlib.import_module(module).add_arguments(sp)
    return parser


#: The exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    process_entry = argv is None  # the console script or ``python -m tgpo.cli``, not a caller in Python
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser(argv).parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error, already printed as one line (2)
        return int(exit_.code or 0)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    eval_process = process_entry and args.command == "eval"  # Ctrl-C ends it promptly (see the helpers below)
    if eval_process:
        interrupt_with_deadline(EVAL_INTERRUPT_GRACE_S)
    code = int(module.run(args) or 0)
    if eval_process and code == INTERRUPTED:
        _exit_now(code)
    return code


#: Seconds an interrupted eval may take to keep its answers and print its line before it is ended anyway.
EVAL_INTERRUPT_GRACE_S = 5.0


def interrupt_with_deadline(grace_s: float) -> None:
    """Ctrl-C raises KeyboardInterrupt as usual (the eval closes its answer cache and prints its line), and arms a
    watchdog that ends the process ``grace_s`` later with exit 130 whatever became of that exception: a library
    that catches it, or a main thread blocked behind a hung request, must not keep a stopped run alive. Answers are
    committed to the SQLite cache one by one, so ending the process loses none. A second Ctrl-C is Python's own."""
    import signal
    import threading
    import time

    def watchdog() -> None:
        time.sleep(grace_s)
        print(f"tgpo eval: interrupted; ended {grace_s:.0f} s after Ctrl-C, the answers so far are kept: rerun the "
              "same command to generate only the rest", file=sys.stderr, flush=True)
        os._exit(INTERRUPTED)

    def on_sigint(signum, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Thread(target=watchdog, name="tgpo-interrupt-watchdog", daemon=True).start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


def _exit_now(code: int) -> None:
    """End an interrupted eval at once. Its answer cache is closed and its one line printed; what an ordinary exit
    would still wait for is the daemon threads of hung requests and the interpreter's final garbage collection of
    lm-eval's and torch's heap (2-3 s measured on an idle machine, longer on a loaded one). Grader workers exit on
    their own when their parent is gone (tgpo.grading.pool)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
