"""``tgpo train --config FILE.yaml [--method M] [--max-steps N] [--output-dir D] [--resume] [--set KEY=VALUE ...]``

The YAML has one place per setting::

    model: repro/lab_models/student        # folder (or Hub id) of the student
    teacher_model: repro/lab_models/teacher  # needed by tgpo, rkl, kdrl, kdrl_reference
    trust_remote_code: false
    dataset:
      path: data/train.jsonl               # local JSONL, or a Hub id; omitted: SPEC §3's OpenR1-Math (LUFFY)
      split: train                         # Hub split
      limit: 1000                          # first N rows
    system_prompt: null                    # null: the authors' prompt (chat models only); "": none; or a string
    trainer:                               # any TGPOConfig / GRPOConfig field
      method: tgpo
      output_dir: runs/tgpo
      max_steps: 300
      learning_rate: 1.0e-6
      per_device_train_batch_size: 16
      num_generations: 8
      max_completion_length: 8192
      save_steps: 50

``base: other.yaml`` (or a list; ``inherit:`` is a synonym) merges other files first, paths relative to this one
(deep merge: mappings key by key, other values replaced). An optional ``launch:`` mapping (``num_machines``,
``num_processes``, ``gpus_per_node``, ``gpu_memory_gb``, ``accelerate_config``, ``teacher_server``) describes the
devices; ``--dry-run`` prints the resolved plan (see :mod:`tgpo.plan`) without loading any weights.

``--set trainer.learning_rate=1e-5`` (dotted keys, YAML values) overrides any entry. Checkpoints are safetensors in
``output_dir/checkpoint-N``; ``--resume`` continues from the newest one. Bad input stops with one line naming it.
"""

from __future__ import annotations

import sys
from pathlib import Path

TOP_LEVEL = {"model", "teacher_model", "trust_remote_code", "dataset", "system_prompt", "trainer", "launch"}
#: ``base:`` (or ``inherit:``) names one file or a list of files, relative to the config, merged first (deep merge:
#: mappings merge key by key, anything else — lists included — is replaced by the inheriting file's value).
INHERIT_KEYS = ("base", "inherit")
#: ``launch:`` describes where a run goes (read by ``--dry-run`` and repro/launch/); training itself ignores it.
LAUNCH_KEYS = {"num_machines", "num_processes", "gpus_per_node", "gpu_memory_gb", "accelerate_config", "teacher_server"}
DATASET_KEYS = {"path", "split", "limit"}
#: Trainer settings the CLI picks when the YAML does not: per-step logs and checkpoints, CPU-friendly precision.
CLI_DEFAULTS = {"logging_steps": 1, "save_strategy": "steps", "save_steps": 50, "report_to": "none"}


class ConfigError(ValueError):
    """The YAML config (or an override) is unusable; the message names the file and the key."""


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="YAML file (schema: see `tgpo.train_cli` docstring)")
    parser.add_argument("--method", help="override trainer.method (grpo, tgpo, rkl, kdrl, kdrl_reference, luffy)")
    parser.add_argument("--max-steps", type=int, help="override trainer.max_steps")
    parser.add_argument("--output-dir", help="override trainer.output_dir")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a dotted key")
    parser.add_argument("--dry-run", action="store_true",
                        help="resolve the config into the full plan (models, tokenizers, devices, batch arithmetic, "
                             "guidance schedule), print it and exit; loads no weights, downloads nothing")


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``: nested mappings merge key by key; other values (lists too) replace."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_config(path: Path, chain: tuple = ()) -> dict:
    """One YAML file with its ``base:``/``inherit:`` files merged underneath (paths relative to the file)."""
    import yaml

    if not path.exists():
        via = f" (inherited by {chain[-1]})" if chain else ""
        raise ConfigError(f"config file {str(path)!r} does not exist{via}")
    if path.resolve() in chain:
        raise ConfigError(f"config file {path}: inheritance cycle {' -> '.join(str(p) for p in (*chain, path))}")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    present = [k for k in INHERIT_KEYS if k in cfg]
    if len(present) > 1:
        raise ConfigError(f"config file {path}: use one of {INHERIT_KEYS}, not both")
    bases = cfg.pop(present[0]) if present else None
    if bases is None:
        return cfg
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"config file {path}: '{present[0]}' must be a file name or a list of file names")
    merged: dict = {}
    for base in bases:
        merged = deep_merge(merged, _read_config(path.parent / base, (*chain, path.resolve())))
    return deep_merge(merged, cfg)


def load_config(path: str | Path, overrides: list[str] = ()) -> dict:
    """The YAML config as a dict: inherited files merged, ``KEY=VALUE`` overrides applied, keys checked."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    cfg = _read_config(path)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        node, *parts = key.split(".")
        target = cfg
        for part in [node, *parts][:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a mapping")
        target[key.split(".")[-1]] = yaml.safe_load(value)
    unknown = set(cfg) - TOP_LEVEL
    if unknown:
        raise ConfigError(f"config file {path}: unknown top-level keys {sorted(unknown)}; expected {sorted(TOP_LEVEL)}")
    if "model" not in cfg:
        raise ConfigError(f"config file {path}: 'model' (the student) is required")
    dataset = cfg.get("dataset") or {}
    if not isinstance(dataset, dict) or set(dataset) - DATASET_KEYS:
        raise ConfigError(f"config file {path}: 'dataset' must be a mapping with keys among {sorted(DATASET_KEYS)}")
    launch = cfg.get("launch") or {}
    if not isinstance(launch, dict) or set(launch) - LAUNCH_KEYS:
        raise ConfigError(f"config file {path}: 'launch' must be a mapping with keys among {sorted(LAUNCH_KEYS)}")
    return cfg


def _check_model_path(value, what: str) -> str:
    """A local folder, or something shaped like a Hub id (``org/name``); anything else is a missing path."""
    text = str(value)
    if Path(text).expanduser().exists():
        return str(Path(text).expanduser())
    looks_local = text.startswith((".", "/", "~")) or text.count("/") != 1
    if looks_local:
        raise FileNotFoundError(f"{what} path {text!r} does not exist")
    return text


def build_trainer(cfg: dict, method=None, max_steps=None, output_dir=None):
    """A ``TGPOTrainer`` from a config dict (see the module docstring)."""
    import torch

    from .config import TGPOConfig
    from .data import load_train_dataset
    from .teacher import load_tokenizer
    from .trainer import TGPOTrainer

    trainer_kwargs = {**CLI_DEFAULTS, **(cfg.get("trainer") or {})}
    for key, value in (("method", method), ("max_steps", max_steps), ("output_dir", output_dir)):
        if value is not None:
            trainer_kwargs[key] = value
    trainer_kwargs.setdefault("output_dir", "runs/tgpo")
    trainer_kwargs["trust_remote_code"] = bool(cfg.get("trust_remote_code", False))
    if not torch.cuda.is_available():
        trainer_kwargs.setdefault("use_cpu", True)
        trainer_kwargs.setdefault("bf16", False)
        trainer_kwargs.setdefault("activation_checkpointing", False)
    try:
        args = TGPOConfig(**trainer_kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config 'trainer' section: {err}") from None

    student = _check_model_path(cfg["model"], "student model")
    teacher = cfg.get("teacher_model")
    if teacher is not None:
        teacher = _check_model_path(teacher, "teacher model")
    elif args.needs_teacher and not args.teacher_server_url:
        raise ConfigError(f"method {args.method!r} needs 'teacher_model' (or trainer.teacher_server_url) in the config")
    tokenizer = load_tokenizer(student) if Path(student).exists() else None
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(student, padding_side="left", trust_remote_code=args.trust_remote_code)
    ds_cfg = cfg.get("dataset") or {}
    dataset = load_train_dataset(
        ds_cfg.get("path"),
        tokenizer,
        split=ds_cfg.get("split", "train"),
        limit=ds_cfg.get("limit"),
        system_prompt=cfg.get("system_prompt"),
        need_teacher=args.method == "luffy",
    )
    return TGPOTrainer(
        student,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        teacher_model=teacher if args.needs_teacher else None,
    )


def run(args) -> int:
    from transformers.trainer_utils import get_last_checkpoint

    from .data import DataError
    from .teacher import VocabularyMismatchError

    if getattr(args, "dry_run", False):
        from .plan import PlanError, build_plan, render_plan

        try:
            cfg = load_config(args.config, args.set)
            print(render_plan(build_plan(cfg, args.method, args.max_steps, args.output_dir, config_path=args.config)))
        except (ConfigError, PlanError, VocabularyMismatchError) as err:
            print(f"tgpo train: error: {err}", file=sys.stderr)
            return 2
        return 0
    try:
        cfg = load_config(args.config, args.set)
        trainer = build_trainer(cfg, args.method, args.max_steps, args.output_dir)
        out = trainer.args.output_dir
        checkpoint = get_last_checkpoint(out) if args.resume and Path(out).is_dir() else None
        if args.resume and checkpoint is None:
            print(f"tgpo train: no checkpoint in {out}; starting from step 0", file=sys.stderr)
        trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model(out)
        trainer.save_state()
    except (ConfigError, DataError, FileNotFoundError, VocabularyMismatchError, FloatingPointError) as err:
        print(f"tgpo train: error: {err}", file=sys.stderr)
        return 2
    print(f"tgpo train: {trainer.state.global_step} steps done; model in {out}")
    return 0
