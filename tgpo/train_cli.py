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

Provenance: every run writes ``tgpo_run.yaml`` into its folder when it starts (:func:`tgpo.provenance.run_record`)
and a model card (``README.md``) that names the method, the teacher, the preset, the dataset and the suite.
``--resume`` compares the saved record with the new one and refuses a change of method, student, teacher, preset
or learning-rate schedule unless ``--allow-changes`` is given, naming the keys; a longer ``--max-steps`` continues
the schedule over the new length (:class:`tgpo.guards.ContinueSchedule`). Faults during training — a non-finite
loss, gradient, parameters or sampling distribution, or a full disk — stop the run with one line naming the step
(exit code 2); a checkpoint or final model is written only with finite parameters (:mod:`tgpo.guards`).
"""

from __future__ import annotations

import errno
import os
import shutil
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
    parser.add_argument("--allow-changes", action="store_true",
                        help="with --resume: continue even though the method, models, preset or learning-rate schedule "
                             "differ from the run's tgpo_run.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a dotted key of the YAML, e.g. trainer.learning_rate=1e-5 (repeatable)")
    parser.add_argument("--prepared", action="store_true",
                        help="train the folders made by repro/launch/prepare_models.sh (the config's launch.prepared)")
    parser.add_argument("--dry-run", action="store_true",
                        help="resolve the config into the full plan (models, tokenizers, devices, batch arithmetic, "
                             "guidance schedule, preset, memory), print it and exit; loads no weights, downloads nothing")


def build_trainer(run, args=None, record: dict | None = None):
    """A ``TGPOTrainer`` from a resolved :class:`tgpo.run_config.RunConfig` (``args``: its ``TGPOConfig``).

    Writes the run's record (``record``, default :func:`tgpo.provenance.run_record`) into its output folder once the
    trainer is built, so a run refused on its inputs (a missing data file, a teacher that does not fit) leaves none."""
    from .data import load_train_dataset, student_context_length
    from .hub import resolve_model
    from .provenance import run_record, write_run_record
    from .rewards import REWARD_FUNCTIONS
    from .run_config import build_args
    from .teacher import load_tokenizer
    from .trainer import TGPOTrainer

    args = args or build_args(run)
    record = record or run_record(run, args)
    model = resolve_model(run.model, "student model")  # a folder, a cached Hub snapshot, or (online) a Hub id
    tokenizer = load_tokenizer(model, trust_remote_code=args.trust_remote_code)
    from .objectives import METHODS

    dataset = load_train_dataset(
        run.dataset.path,
        tokenizer,
        split=run.dataset.split,
        limit=run.dataset.limit,
        system_prompt=run.system_prompt,
        need_teacher=METHODS[args.method].off_policy_traces,
        max_positions=student_context_length(model),
        max_completion_length=args.max_completion_length,
    )
    trainer = TGPOTrainer(
        model,
        reward_funcs=[REWARD_FUNCTIONS[args.reward]],  # explicit: the config's reward against the data's answers
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        teacher_model=run.teacher_model if args.needs_teacher else None,
    )
    if trainer.is_world_process_zero():  # one record per run, written by the main process of a launch
        write_run_record(args.output_dir, record)
    trainer.run_record = record
    return trainer


#: ``config.json`` fields that fix a model's parameter shapes: a checkpoint resumes only into the same.
SHAPE_FIELDS = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "tie_word_embeddings")


def check_resume(output_dir: str | Path, checkpoint: str | Path, record: dict, allow_changes: bool) -> dict:
    """Compare a resumed run with the one in ``output_dir``; returns ``record`` with what the resume changed.

    Raises :class:`ConfigError` (one line) when the checkpoint's model has other shapes than the student (it cannot
    be loaded), or when the method, models, preset or schedule differ (:data:`tgpo.provenance.RESUME_GUARDED`) and
    ``allow_changes`` is false, naming the keys.
    """
    import json

    from .provenance import changed_keys, read_run_record

    student = Path(record["model"]) / "config.json"
    saved = Path(checkpoint) / "config.json"
    if student.is_file() and saved.is_file():
        new, old = json.loads(student.read_text()), json.loads(saved.read_text())
        differ = [f"{k} {old.get(k)} vs {new.get(k)}" for k in SHAPE_FIELDS if old.get(k) != new.get(k)]
        if differ:
            raise ConfigError(f"--resume: {checkpoint} holds another student than {record['model']} "
                              f"({', '.join(differ)}); resume with the run's own student or start afresh")
    try:
        old_record = read_run_record(output_dir)
    except ValueError as err:
        raise ConfigError(f"--resume: {err}") from None
    if old_record is None:
        print(f"tgpo train: warning: {output_dir} has no tgpo_run.yaml (made before runs recorded their config); "
              "the resumed settings cannot be compared with it", file=sys.stderr)
        return record
    changed = changed_keys(old_record, record)
    if changed and not allow_changes:
        what = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ConfigError(f"--resume: the run in {output_dir} was made with other settings ({what}); pass "
                          "--allow-changes to resume with the new ones anyway, or --overwrite to start afresh")
    if changed:
        print(f"tgpo train: warning: resuming with changed {', '.join(changed)} (--allow-changes)", file=sys.stderr)
    resumed = {"resumed_from": str(checkpoint)}
    if changed:  # the earlier record is kept inside the new one
        resumed.update(changed_on_resume={k: list(v) for k, v in changed.items()}, previous=old_record)
    return {**record, **resumed}


#: Below this many free bytes in the output folder a failed write is taken for a full disk.
LOW_DISK_BYTES = 256 * 2**20
#: What torch says when sampling from a distribution that is not one (NaN/inf probabilities).
BAD_DISTRIBUTION = "probability tensor contains"


def fault_message(err: Exception, output_dir: str | Path, step: int) -> str | None:
    """One line for a fault during training that is not a bug of the code (a full disk, a non-finite sampling
    distribution), or None (then the error is raised as it is)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if BAD_DISTRIBUTION in str(err):
        return (f"non-finite sampling distribution while generating step {step + 1} ({text}); the last good "
                f"checkpoint in {output_dir} is kept (lower learning_rate?)")
    try:
        free = shutil.disk_usage(Path(output_dir)).free
    except OSError:
        free = None
    disk_full = getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < LOW_DISK_BYTES)
    if not disk_full:
        return None
    room = "" if free is None else f" ({free / 2**20:.0f} MiB free)"
    return (f"no disk space left in {output_dir}{room} while writing step {step}: {text}; the checkpoints written "
            "completely are kept; free space and rerun with --resume")


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


def check_models(run, needs_teacher: bool | None = None) -> None:
    """The run's local model folders, before any weights load (:func:`tgpo.preflight.check_model_folder`)."""
    from .objectives import METHODS
    from .preflight import check_model_folder

    if needs_teacher is None:
        needs_teacher = bool(METHODS[run.method].teacher)
    check_model_folder(run.model, "student model", run.trust_remote_code)
    if needs_teacher:
        check_model_folder(run.teacher_model, "teacher model", run.trust_remote_code)


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


def _check_resume_plan(run, allow_changes: bool) -> None:
    """``--resume --dry-run``: the checks of :func:`check_resume` against the newest complete checkpoint, if any."""
    from .checkpoints import newest_complete
    from .provenance import run_record
    from .run_config import build_args

    args = build_args(run)
    checkpoint, _ = newest_complete(args.output_dir)
    if checkpoint is not None:
        check_resume(args.output_dir, checkpoint, run_record(run, args), allow_changes)


def _dry_run(args) -> int:
    from .plan import PlanError, build_plan, render_plan
    from .run_config import load_run_config
    from .teacher import VocabularyMismatchError

    try:
        run = load_run_config(args.config, args.set, method=args.method, max_steps=args.max_steps,
                              output_dir=args.output_dir, preset=args.preset, prepared=args.prepared, check_paths=False)
        check_models(run)
        if args.resume:
            _check_resume_plan(run, args.allow_changes)
        print(render_plan(build_plan(run)))
    except (ConfigError, PlanError, VocabularyMismatchError, FileNotFoundError) as err:
        print(f"tgpo train: error: {err}", file=sys.stderr)
        return 2
    return 0


def run(args) -> int:
    if getattr(args, "dry_run", False):
        return _dry_run(args)
    from .data import DataError, local_file
    from .guards import nonfinite_parameters
    from .provenance import run_record
    from .run_config import build_args, load_run_config
    from .teacher import VocabularyMismatchError
    from .trainer import GracefulStop

    try:
        if args.allow_changes and not args.resume:
            raise ConfigError("--allow-changes goes with --resume (it allows a resumed run to change its settings)")
        config = load_run_config(args.config, args.set, method=args.method, max_steps=args.max_steps,
                                 output_dir=args.output_dir, preset=args.preset, prepared=args.prepared)
        targs = build_args(config)
        check_models(config, targs.needs_teacher)
        _refuse_output_over_inputs(targs.output_dir, config)
        check_report_backends(targs.report_to)
        local_file(config.dataset.path)  # a missing data file, before the output folder is touched
        checkpoint = prepare_output_dir(targs.output_dir, args.resume, args.overwrite)
        record = run_record(config, targs)
        if checkpoint is not None:
            record = check_resume(targs.output_dir, checkpoint, record, args.allow_changes)
        trainer = build_trainer(config, targs, record)
    except (ConfigError, DataError, FileNotFoundError, VocabularyMismatchError) as err:
        print(f"tgpo train: error: {err}", file=sys.stderr)
        return 2
    stop = GracefulStop()
    trainer.add_callback(stop)
    out = targs.output_dir
    try:
        with stop.handling_signals():
            trainer.train(resume_from_checkpoint=checkpoint)
        if stop.received is not None:
            print(f"tgpo train: stopped by {signal.Signals(stop.received).name} after step {trainer.state.global_step}; "
                  f"checkpoint kept in {out}; continue with --resume", file=sys.stderr)
            return SIGNAL_EXIT.get(stop.received, 1)
        problem = nonfinite_parameters(trainer.model)
        if problem is not None:
            raise FloatingPointError(f"non-finite parameters after step {trainer.state.global_step} ({problem}); the "
                                     "final model is not written")
        trainer.save_model(out)
        trainer.save_state()
        trainer.create_model_card()
    except FloatingPointError as err:
        print(f"tgpo train: error: {err}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as err:
        message = fault_message(err, out, trainer.state.global_step)
        if message is None:
            raise
        print(f"tgpo train: error: {message}", file=sys.stderr)
        return 2
    print(f"tgpo train: {trainer.state.global_step} steps done; model in {out}")
    return 0
