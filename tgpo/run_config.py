"""One run config: a YAML file resolved into everything a run needs, for every caller (``tgpo train``, its
``--dry-run`` plan, the repro scripts and the launch recipes).

The YAML has one place per setting::

    model: Qwen/Qwen2.5-Math-7B              # folder (or Hub id) of the student
    teacher_model: path/to/aligned-teacher   # needed by the methods that read a teacher
    trust_remote_code: false
    preset: controlled                       # optional: settings preset (controlled | authors_final | authors_early)
    dataset:
      path: data/train.jsonl                 # local JSONL, or a Hub id; omitted: the paper's OpenR1-Math (LUFFY)
      split: train                           # Hub split
      limit: 1000                            # first N rows
    system_prompt: null                      # null: the authors' prompt (chat models only); "": none; or a string
    trainer:                                 # any TGPOConfig / GRPOConfig field
      method: tgpo
      output_dir: runs/tgpo
      max_steps: 300
    launch:                                  # where a run goes (read by --dry-run and repro/launch/); training ignores it
      num_processes: 8
      accelerate_config: repro/configs/accelerate/fsdp.yaml
      prepared: {model: ..., teacher_model: ...}   # folders made by repro/launch/prepare_models.sh (--prepared)

``base: other.yaml`` (or a list; ``inherit:`` is a synonym) merges other files first, paths relative to this one
(OmegaConf's deep merge: mappings key by key, other values replaced; cycles are reported). Values may use
OmegaConf interpolation, e.g. ``${oc.env:TGPO_MODELS,models}``, and ``${lab_model:student}`` (a stored lab
model). Overrides are dotted ``KEY=VALUE`` pairs (OmegaConf's dotlist). Precedence, lowest first:
:data:`CLI_DEFAULTS` < the file's ``trainer:`` < the preset's settings for the run's method (docs/method.md §3) <
``--method/--max-steps/--output-dir`` < ``--set``.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

TOP_LEVEL = {"model", "teacher_model", "trust_remote_code", "dataset", "system_prompt", "trainer", "launch", "preset"}
INHERIT_KEYS = ("base", "inherit")
#: Trainer settings a run gets when its YAML does not choose them: per-step logs and checkpoints.
CLI_DEFAULTS = {"logging_steps": 1, "save_strategy": "steps", "save_steps": 50, "report_to": "none",
                "output_dir": "runs/tgpo"}
#: Device settings of a machine without CUDA (applied unless the YAML sets them).
CPU_DEFAULTS = {"use_cpu": True, "bf16": False, "activation_checkpointing": False}


class ConfigError(ValueError):
    """The YAML config (or an override) is unusable; the message names the file and the key."""


def did_you_mean(word: str, choices) -> str:
    """``"; did you mean 'limit'?"`` for the closest of ``choices`` (difflib), else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_keys(found, known, what: str) -> str:
    """One line naming each key of ``found`` not in ``known``, with the closest known one (``""`` if none)."""
    unknown = sorted(set(found) - set(known), key=str)
    return "; ".join(f"unknown {what} {key!r}{did_you_mean(key, known)}" for key in unknown)


def trainer_fields() -> set[str]:
    """The fields a ``trainer:`` section may set (``TGPOConfig``'s, TRL's included)."""
    import dataclasses

    from .config import TGPOConfig

    return {f.name for f in dataclasses.fields(TGPOConfig) if f.init}


def check_trainer_fields(trainer: dict, where: str = "config 'trainer' section") -> None:
    """Refuse a ``trainer`` field that ``TGPOConfig`` does not have, naming it and the closest field (a typo would
    otherwise be Python's "unexpected keyword argument")."""
    problem = unknown_keys(trainer, trainer_fields(), "field")
    if problem:
        raise ConfigError(f"{where}: {problem}")


# ---------------------------------------------------------------------------------------------- files
def _register_resolvers() -> None:
    """``${lab_model:NAME}``: the folder of a stored lab model (configs must not hard-code where the package is)."""
    from omegaconf import OmegaConf

    def lab_model(name: str) -> str:
        from .lab import model_path

        return str(model_path(name))

    if not OmegaConf.has_resolver("lab_model"):
        OmegaConf.register_resolver("lab_model", lab_model)


def _read(path: Path, chain: tuple = ()):
    """One YAML file as an OmegaConf node, with its ``base:``/``inherit:`` files merged underneath."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not path.is_file():
        via = f" (inherited by {chain[-1]})" if chain else ""
        raise ConfigError(f"config file {str(path)!r} does not exist{via}")
    if path.resolve() in chain:
        raise ConfigError(f"config file {path}: inheritance cycle {' -> '.join(str(p) for p in (*chain, path))}")
    try:
        node = OmegaConf.load(path)
    except (OmegaConfBaseException, ValueError, UnicodeDecodeError) as err:  # YAML errors come wrapped or plain
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    except Exception as err:  # yaml.YAMLError and friends: the message is what matters
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if node is None or not OmegaConf.is_dict(node):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    present = [k for k in INHERIT_KEYS if k in node]
    if len(present) > 1:
        raise ConfigError(f"config file {path}: use one of {INHERIT_KEYS}, not both")
    if not present:
        return node
    bases = node.pop(present[0])
    bases = [bases] if isinstance(bases, str) else bases
    if not OmegaConf.is_list(bases) and not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"config file {path}: '{present[0]}' must be a file name or a list of file names")
    parents = [_read(path.parent / b, (*chain, path.resolve())) for b in bases]
    return OmegaConf.merge(*parents, node)


def read_yaml(path: str | Path, overrides: list[str] | tuple = ()) -> dict:
    """A YAML file with its inherited files merged and dotted ``KEY=VALUE`` overrides applied, as a plain dict
    (interpolations resolved). Any YAML of the project reads through here: run configs and repro table configs."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path)
    _register_resolvers()
    node = _read(path)
    check_overrides(overrides)
    try:
        if overrides:
            node = OmegaConf.merge(node, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config file {path}: {str(err).splitlines()[0]}") from None


# -------------------------------------------------------------------------------------------- presets
@lru_cache(maxsize=1)
def _preset_file() -> dict[str, dict]:
    """``tgpo/resources/presets.yaml``: ``{preset: {"about": text, "all": {TGPOConfig field: value}}}``."""
    import yaml

    from .resources import PRESETS_FILE

    raw = yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8"))
    for name, entry in raw.items():
        extra = set(entry) - {"about", "all"}
        if extra:
            raise ConfigError(f"{PRESETS_FILE}: preset {name!r} has keys {sorted(extra)}; a method's own settings "
                              "under a preset live in its registry entry (tgpo.objectives.Method.presets)")
    return raw


def preset_names() -> list[str]:
    return list(_preset_file())


def presets() -> dict[str, dict[str, dict]]:
    """Settings presets: ``{preset: {method: {TGPOConfig field: value}, "_about": text}}``, each method's settings
    being the preset's ``all`` (presets.yaml) under the method's own (its registry entry's ``presets``)."""
    from .objectives import METHODS

    return {name: {m: preset_settings(name, m) for m in METHODS} | {"_about": entry.get("about", "")}
            for name, entry in _preset_file().items()}


def preset_settings(preset: str | None, method: str) -> dict:
    """The TGPOConfig fields a preset sets for ``method`` (empty without a preset)."""
    from .objectives import METHODS, canonical_method

    if not preset:
        return {}
    table = _preset_file()
    if preset not in table:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(table)}")
    own = METHODS[canonical_method(method)].presets
    return {**(table[preset].get("all") or {}), **(own.get(preset) or {})}


# ------------------------------------------------------------------------------------------- resolved
@dataclass(frozen=True)
class DatasetSpec:
    """The ``dataset:`` section: ``path`` (local JSONL or Hub id; None: the paper's OpenR1-Math), the Hub ``split``
    and the first ``limit`` rows (checked by :func:`tgpo.data.load_train_dataset`)."""

    path: str | None = None
    split: str = "train"
    limit: int | None = None


@dataclass(frozen=True)
class LaunchSpec:
    """The ``launch:`` section: where a run goes (read by ``--dry-run`` and repro/launch/; training ignores it)."""

    num_machines: int | None = None
    num_processes: int | None = None
    gpus_per_node: int | None = None
    gpu_memory_gb: float | None = None
    accelerate_config: str | None = None
    teacher_server: dict | None = None
    prepared: dict | None = None
    aligned_pair: str | None = None


def _section(cls, value, name: str, where: str):
    """A config section (a mapping) as ``cls``; unknown keys are one :class:`ConfigError` naming them."""
    keys = [f.name for f in fields(cls)]
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '{name}' must be a mapping with keys among {sorted(keys)}")
    if set(value) - set(keys):
        raise ConfigError(f"{where}: '{name}': {unknown_keys(value, keys, 'key')} (keys: {sorted(keys)})")
    return cls(**value)


@dataclass
class RunConfig:
    """A resolved run: the student, the teacher (None when the method reads none), the data and the trainer's
    settings: ``TGPOConfig`` field -> value (the names checked by :func:`resolve`; :func:`make_args` builds the
    ``TGPOConfig``)."""

    source: str | None
    model: str
    teacher_model: str | None
    trainer: dict[str, Any]
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    system_prompt: str | None = None
    trust_remote_code: bool = False
    preset: str | None = None
    launch: LaunchSpec = field(default_factory=LaunchSpec)

    @property
    def method(self) -> str:
        return self.trainer["method"]


def check_model_path(value, what: str) -> str:
    """A local folder, a Hub id in the local cache (its snapshot folder), or (online) a Hub id; anything else raises
    ``FileNotFoundError`` with one line naming it (:func:`tgpo.hub.resolve_model`, as ``TGPOTrainer`` resolves it)."""
    from .hub import resolve_model

    return resolve_model(value, what)


def resolve(
    cfg: dict,
    *,
    method: str | None = None,
    max_steps: int | None = None,
    output_dir: str | None = None,
    preset: str | None = None,
    prepared: bool = False,
    set_trainer: dict | None = None,
    source: str | None = None,
    check_paths: bool = True,
) -> RunConfig:
    """A merged config dict (:func:`read_yaml`) resolved into a :class:`RunConfig` (see the module docstring).

    ``set_trainer`` holds the ``--set trainer.*`` overrides, applied last (above the preset); ``prepared`` swaps in
    ``launch.prepared``'s model folders. Raises :class:`ConfigError` (or ``FileNotFoundError`` for a model path)
    with one line naming the input.
    """
    from .objectives import METHODS, canonical_method, method_choices

    where = f"config file {source}" if source else "config"
    unknown = set(cfg) - TOP_LEVEL
    if unknown:
        flat = sorted(k for k in unknown if k in trainer_fields())
        if flat:  # a TRL-style flat YAML: say where its trainer fields go
            raise ConfigError(f"{where}: {flat} are trainer fields: put them under 'trainer:' (top-level keys: "
                              f"{sorted(TOP_LEVEL)}; see the tgpo.run_config docstring)")
        raise ConfigError(f"{where}: unknown top-level keys {sorted(unknown)} "
                          f"({unknown_keys(unknown, TOP_LEVEL, 'key')}); expected {sorted(TOP_LEVEL)}")
    if "model" not in cfg:
        raise ConfigError(f"{where}: 'model' (the student) is required")
    dataset = _section(DatasetSpec, cfg.get("dataset") or {}, "dataset", where)
    launch = _section(LaunchSpec, cfg.get("launch") or {}, "launch", where)
    file_trainer = cfg.get("trainer") or {}
    if not isinstance(file_trainer, dict):
        raise ConfigError(f"{where}: 'trainer' must be a mapping of TGPOConfig fields")
    cli = {k: v for k, v in (("method", method), ("max_steps", max_steps), ("output_dir", output_dir)) if v is not None}
    cli.update(set_trainer or {})
    check_trainer_fields({**file_trainer, **cli}, f"{where}: 'trainer'")
    run_method = canonical_method(cli.get("method") or file_trainer.get("method") or "tgpo")
    if run_method not in METHODS:
        raise ConfigError(f"{where}: trainer.method={run_method!r}{did_you_mean(run_method, METHODS)} "
                          f"(expected one of {', '.join(method_choices())})")
    preset = preset or cfg.get("preset")
    trainer = {**CLI_DEFAULTS, **file_trainer, **preset_settings(preset, run_method), **cli, "method": run_method}
    trainer["trust_remote_code"] = bool(cfg.get("trust_remote_code", False))

    model, teacher = cfg["model"], cfg.get("teacher_model")
    if prepared:
        ready = launch.prepared or {}
        if not ready:
            raise ConfigError(f"{where}: --prepared needs launch.prepared (the folders prepare_models.sh makes)")
        model, teacher = ready.get("model", model), ready.get("teacher_model", teacher)
    if check_paths:
        model = check_model_path(model, "student model")
        if teacher is not None:
            teacher = check_model_path(teacher, "teacher model")
    return RunConfig(source=source, model=str(model), teacher_model=None if teacher is None else str(teacher),
                     trainer=trainer, dataset=dataset, system_prompt=cfg.get("system_prompt"),
                     trust_remote_code=trainer["trust_remote_code"], preset=preset, launch=launch)


def check_overrides(overrides: list[str] | tuple) -> None:
    """Each ``--set`` item must be ``KEY=VALUE`` with a YAML value; else :class:`ConfigError` naming the item."""
    from omegaconf import OmegaConf

    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            OmegaConf.from_dotlist([item])
        except Exception as err:  # yaml's and OmegaConf's errors alike: the item is what the user must fix
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({str(err).splitlines()[0]})") from None


def split_overrides(overrides: list[str] | tuple) -> tuple[list[str], dict]:
    """``--set`` items as (overrides of the file, ``trainer.*`` overrides applied above the preset)."""
    from omegaconf import OmegaConf

    check_overrides(overrides)
    trainer_items = [o for o in overrides if o.partition("=")[0].strip().startswith("trainer.")]
    if not trainer_items:
        return list(overrides), {}
    node = OmegaConf.to_container(OmegaConf.from_dotlist(trainer_items), resolve=True)
    return list(overrides), node.get("trainer") or {}


def load_run_config(path: str | Path, overrides: list[str] | tuple = (), **kwargs) -> RunConfig:
    """:func:`read_yaml` + :func:`resolve`: the one entry point for a run config file."""
    file_overrides, trainer_overrides = split_overrides(overrides)
    cfg = read_yaml(path, file_overrides)
    return resolve(cfg, set_trainer=trainer_overrides, source=str(path), **kwargs)


def make_args(trainer: dict, *, probe: bool = False, processes: int = 1, where: str = "config 'trainer' section"):
    """The one place a ``TGPOConfig`` is built from a run's trainer settings. Bad fields: :class:`ConfigError`.

    ``probe=False``: the run's own config (with :data:`CPU_DEFAULTS` on a machine without CUDA). ``probe=True``: a
    CPU-only copy that validates the settings without training (bf16, fp16 and vLLM off), as it would validate on
    ``processes`` data-parallel processes (:class:`tgpo.config.PlannedConfig`) — for ``--dry-run``, the repro
    scripts' checks and the audit.
    """
    import torch

    from .config import PlannedConfig, TGPOConfig

    kwargs = dict(trainer)
    check_trainer_fields(kwargs, where)
    if probe:
        kwargs.update(use_cpu=True, bf16=False, fp16=False, use_vllm=False)
    elif not torch.cuda.is_available():
        for key, value in CPU_DEFAULTS.items():
            kwargs.setdefault(key, value)
    try:
        with warnings.catch_warnings():  # a deprecated method name has already been reported by resolve
            warnings.simplefilter("ignore", FutureWarning)
            return PlannedConfig(**kwargs, planned_processes=processes) if probe else TGPOConfig(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def check_teacher(args, teacher_model: str | None) -> None:
    """A method that reads a teacher needs ``teacher_model`` or a served teacher: :class:`ConfigError` otherwise."""
    if args.needs_teacher and teacher_model is None and not args.teacher_server_url:
        raise ConfigError(f"method {args.method!r} needs 'teacher_model' (or trainer.teacher_server_url) in the config")


def build_args(run: RunConfig):
    """The run's ``TGPOConfig`` (:func:`make_args`), its teacher checked (:func:`check_teacher`)."""
    args = make_args(run.trainer)
    check_teacher(args, run.teacher_model)
    return args


def main(argv: list[str] | None = None) -> int:
    """``python -m tgpo.run_config CONFIG [--prepared] [--set K=V] --get KEY``: print one resolved value (for shell
    launch recipes, so model paths live in configs, not in file names)."""
    from tgpo.cli import OneLineParser

    parser = OneLineParser(prog="python -m tgpo.run_config", description=main.__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--get", required=True, help="model | teacher_model | method | trainer.<field> | launch.<key>")
    parser.add_argument("--prepared", action="store_true", help="use launch.prepared's model folders")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        run = load_run_config(args.config, args.set, prepared=args.prepared, check_paths=False)
    except ConfigError as err:
        print(f"tgpo.run_config: error: {err}", file=sys.stderr)
        return 2
    value: object = {"model": run.model, "teacher_model": run.teacher_model, "method": run.method,
                     "trainer": run.trainer, "launch": asdict(run.launch), "preset": run.preset}
    for part in args.get.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    print("" if value is None else value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
