"""``tgpo train --config FILE.yaml [--method M] [--preset P] [--max-steps N] [--output-dir D] [--resume | --overwrite]
[--set KEY=VALUE ...] [--dry-run]``

The YAML schema, inheritance, presets and override precedence are :mod:`tgpo.run_config`'s. ``--dry-run`` prints
the resolved plan (:mod:`tgpo.plan`) without loading any weights.

Run directories: checkpoints are safetensors in ``output_dir/checkpoint-N``, each marked complete once every file
is written (:mod:`tgpo.checkpoints`). Into a folder that already holds a run, ``tgpo train`` stops unless told
``--resume`` (continue from the newest *complete* checkpoint, skipping half-written ones with a warning) or
``--overwrite`` (move the old run aside to ``<dir>.previous-<time>``; nothing is deleted). SIGINT or SIGTERM ends the
run at the next step boundary with a checkpoint of the last finished step (exit code 130/143). Bad input stops
with one line naming it (exit code 2), before any model loads where possible.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from .run_config import ConfigError

#: Exit codes after a signal ended the run cleanly (128 + signal number, as a shell reports it).
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def method_name(text: str) -> str:
    """An ``argparse`` type: a registered method. The registry (and torch with it) is imported only when the option
    is given, so that ``tgpo train --help`` stays fast."""
    import argparse

    from .objectives import METHODS, method_choices
    from .run_config import did_you_mean

    name = text.lower()
    if name not in method_choices():  # registered names and deprecated aliases (resolved with a warning)
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r}{did_you_mean(name, METHODS)} "
                                         f"(choose from {', '.join(METHODS)})")
    return name


def add_arguments(parser) -> None:
    from .cli import positive_int

    parser.add_argument("--config", required=True, help="YAML run config (schema: the tgpo.run_config docstring; "
                                                        "examples: examples/lab_tgpo.yaml)")
    parser.add_argument("--method", type=method_name, metavar="METHOD",
                        help="override trainer.method: tgpo (TGPO-Reg), tgpo_adv, grpo, rkl, kdrl, luffy, ... "
                             "(the registry tgpo.objectives.METHODS; docs/method.md)")
    parser.add_argument("--preset", help="settings preset: controlled, authors_final or authors_early "
                                         "(normalisation and aggregation per method; see docs/method.md §3)")
    parser.add_argument("--max-steps", type=positive_int, help="override trainer.max_steps (>= 1)")
    parser.add_argument("--output-dir", help="override trainer.output_dir")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in output_dir")
    mode.add_argument("--overwrite", action="store_true",
                      help="move an earlier run in output_dir aside (to <dir>.previous-<time>) and start afresh")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a dotted key of the YAML, e.g. trainer.learning_rate=1e-5 (repeatable)")
    parser.add_argument("--prepared", action="store_true",
                        help="train the folders made by repro/launch/prepare_models.sh (the config's launch.prepared)")
    parser.add_argument("--dry-run", action="store_true",
                        help="resolve the config into the full plan (models, tokenizers, devices, batch arithmetic, "
                             "guidance schedule, preset, memory), print it and exit; loads no weights, downloads nothing")


def build_trainer(run, args=None):
    """A ``TGPOTrainer`` from a resolved :class:`tgpo.run_config.RunConfig` (``args``: its ``TGPOConfig``)."""
    from .data import load_train_dataset, student_context_length
    from .run_config import build_args
    from .teacher import load_tokenizer
    from .trainer import TGPOTrainer

    args = args or build_args(run)
    if Path(run.model).exists():
        tokenizer = load_tokenizer(run.model)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(run.model, padding_side="left", trust_remote_code=args.trust_remote_code)
    from .objectives import METHODS

    dataset = load_train_dataset(
        run.dataset.path,
        tokenizer,
        split=run.dataset.split,
        limit=run.dataset.limit,
        system_prompt=run.system_prompt,
        need_teacher=METHODS[args.method].off_policy_traces,
        max_positions=student_context_length(run.model),
        max_completion_length=args.max_completion_length,
    )
    return TGPOTrainer(
        run.model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        teacher_model=run.teacher_model if args.needs_teacher else None,
    )


def prepare_output_dir(output_dir: str | Path, resume: bool, overwrite: bool) -> str | None:
    """Check and ready the run folder before any model loads; returns the checkpoint to resume from (or None).

    Raises :class:`ConfigError` with one line: the folder is a file, is not writable, or already holds a run and
    neither ``resume`` nor ``overwrite`` was asked.
    """
    from .checkpoints import checkpoint_dirs, move_aside, newest_complete

    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output dir {str(out)!r} is a file, not a folder")
    holds_run = out.is_dir() and (bool(checkpoint_dirs(out)) or (out / "model.safetensors").exists())
    checkpoint = None
    if holds_run and overwrite:
        print(f"tgpo train: earlier run in {out} moved to {move_aside(out)}", file=sys.stderr)
    elif holds_run and resume:
        path, skipped = newest_complete(out)
        for reason in skipped:
            print(f"tgpo train: warning: skipping {reason}", file=sys.stderr)
        if path is None:
            raise ConfigError(f"--resume: no complete checkpoint in {out}" + (f" ({skipped[0]})" if skipped else ""))
        checkpoint = str(path)
    elif holds_run:
        raise ConfigError(f"output dir {str(out)!r} already holds a run (checkpoints or a model): pass --resume to "
                          "continue it or --overwrite to move it aside and start afresh")
    elif resume:
        print(f"tgpo train: no checkpoint in {out}; starting from step 0", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise ConfigError(f"output dir {str(out)!r} is not writable")
    return checkpoint


def _refuse_output_over_inputs(output_dir, config) -> None:
    """An output folder that is, or contains, the student, teacher or data is refused before ``--overwrite``
    moves anything (it would move the model it is about to load)."""
    from .outputs import overlapping_input

    message = overlapping_input(output_dir, {"student": config.model, "teacher": config.teacher_model,
                                             "dataset": getattr(config.dataset, "path", None)})
    if message:
        raise ConfigError(message)


def check_report_backends(report_to) -> None:
    """Stop before any model loads when a ``report_to`` backend is not installed (transformers would raise at the
    trainer's start), naming the package to install."""
    from .plan import missing_report_backends

    missing = missing_report_backends(report_to)
    if missing:
        raise ConfigError("trainer.report_to: " + ", ".join(f"{b} is not installed (pip install {pkg})"
                                                            for b, pkg in missing.items()))


def _dry_run(args) -> int:
    from .plan import PlanError, build_plan, render_plan
    from .run_config import load_run_config
    from .teacher import VocabularyMismatchError

    try:
        run = load_run_config(args.config, args.set, method=args.method, max_steps=args.max_steps,
                              output_dir=args.output_dir, preset=args.preset, prepared=args.prepared, check_paths=False)
        print(render_plan(build_plan(run)))
    except (ConfigError, PlanError, VocabularyMismatchError, FileNotFoundError) as err:
        print(f"tgpo train: error: {err}", file=sys.stderr)
        return 2
    return 0


def run(args) -> int:
    if getattr(args, "dry_run", False):
        return _dry_run(args)
    from .data import DataError
    from .run_config import build_args, load_run_config
    from .teacher import VocabularyMismatchError
    from .trainer import GracefulStop

    try:
        config = load_run_config(args.config, args.set, method=args.method, max_steps=args.max_steps,
                                 output_dir=args.output_dir, preset=args.preset, prepared=args.prepared)
        targs = build_args(config)
        _refuse_output_over_inputs(targs.output_dir, config)
        check_report_backends(targs.report_to)
        checkpoint = prepare_output_dir(targs.output_dir, args.resume, args.overwrite)
        trainer = build_trainer(config, targs)
    except (ConfigError, DataError, FileNotFoundError, VocabularyMismatchError) as err:
        print(f"tgpo train: error: {err}", file=sys.stderr)
        return 2
    stop = GracefulStop()
    trainer.add_callback(stop)
    out = targs.output_dir
    try:
        with stop.handling_signals():
            trainer.train(resume_from_checkpoint=checkpoint)
    except FloatingPointError as err:
        print(f"tgpo train: error: {err}", file=sys.stderr)
        return 2
    if stop.received is not None:
        print(f"tgpo train: stopped by {signal.Signals(stop.received).name} after step {trainer.state.global_step}; "
              f"checkpoint kept in {out}; continue with --resume", file=sys.stderr)
        return SIGNAL_EXIT.get(stop.received, 1)
    trainer.save_model(out)
    trainer.save_state()
    print(f"tgpo train: {trainer.state.global_step} steps done; model in {out}")
    return 0
