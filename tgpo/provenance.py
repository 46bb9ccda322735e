"""How a result was made: the git commit and the versions of the libraries that made it."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tgpo", "torch", "transformers", "trl", "accelerate", "lm_eval", "math-verify", "datasets", "pandas", "vllm")


def git_sha(repo: Path = REPO_ROOT, ignore: tuple[str, ...] = ()) -> str | None:
    """``HEAD``'s sha, with ``-dirty`` when tracked files outside the folders ``ignore`` (relative to the checkout's
    root, e.g. an output folder) have uncommitted changes; None outside a checkout."""
    try:
        run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True,  # noqa: E731
                                        timeout=10, check=True).stdout.strip()
        sha = run("rev-parse", "HEAD")
        changes = run("status", "--porcelain", "--untracked-files=no", "--", ":/",
                      *(f":(top,exclude){folder}" for folder in ignore))
        return sha + ("-dirty" if changes else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python and each installed package's version (absent packages are left out)."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


# ------------------------------------------------------------------------------------------- a run's record
#: The record every ``tgpo train`` run writes into its output folder when it starts (docs/architecture.md,
#: "Run directories").
RUN_RECORD = "tgpo_run.yaml"
#: Settings of the learning-rate schedule, recorded with their effective values (defaults included).
SCHEDULE_FIELDS = ("learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps",
                   "max_steps")
#: What ``--resume`` refuses to change without ``--allow-changes`` (dotted keys of the record). ``max_steps`` is
#: not among them: an extended run continues the schedule over its new length (tgpo.guards.ContinueSchedule).
RESUME_GUARDED = ("method", "model", "teacher_model", "preset", *(f"schedule.{k}" for k in SCHEDULE_FIELDS[:-1]))
METHOD_DOC = "docs/method.md"


def _plain(value):
    """``value`` as YAML-safe built-in types (enums by value, anything else by its text)."""
    import json

    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", str(v))))


def _where(path: str | None) -> str | None:
    """A model or data path as an absolute path when it exists here, else as given (a Hub id)."""
    if path is None:
        return None
    return str(Path(path).expanduser().resolve()) if Path(path).expanduser().exists() else str(path)


def run_record(run, args) -> dict:
    """How a run is made: its resolved config (:class:`tgpo.run_config.RunConfig`) with ``args`` (its
    ``TGPOConfig``): model, teacher (None when the method reads none), dataset, preset, method, every trainer field
    the run sets, the schedule's effective settings, the suite's version and commit, and the library versions."""
    from dataclasses import asdict
    from datetime import datetime, timezone

    from . import __version__

    values = args.to_dict()  # normalised (enums as values) and with secrets redacted
    dataset = {**asdict(run.dataset), "path": _where(run.dataset.path)}
    return _plain({
        "method": args.method,
        "model": _where(run.model),
        "teacher_model": _where(run.teacher_model) if args.needs_teacher else None,
        "preset": run.preset,
        "dataset": dataset,
        "system_prompt": run.system_prompt,
        "config_file": run.source,
        "trainer": {k: values[k] for k in sorted(set(run.trainer) | {"use_cpu", "bf16"}) if k in values},
        "schedule": {k: values.get(k) for k in SCHEDULE_FIELDS},
        "suite": {"name": "tgpo", "version": __version__, "git_sha": git_sha()},
        "versions": package_versions(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })


def write_run_record(output_dir: str | Path, record: dict) -> Path:
    """``output_dir/tgpo_run.yaml`` (written to a temporary name, then renamed). The temporary name is this
    process's own: two processes writing the record at once (the ranks of a launch) must not rename each other's."""
    import os

    import yaml

    target = Path(output_dir) / RUN_RECORD
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{RUN_RECORD}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
    os.replace(tmp, target)
    return target


def read_run_record(output_dir: str | Path) -> dict | None:
    """The record of the run in ``output_dir``; None when it has none (a run made before records existed).
    An unreadable record raises ``ValueError`` naming the file."""
    import yaml

    path = Path(output_dir) / RUN_RECORD
    if not path.is_file():
        return None
    try:
        record = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} does not hold a run record")
    return record


def _get(record: dict, dotted: str):
    value = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def changed_keys(old: dict, new: dict, keys: tuple[str, ...] = RESUME_GUARDED) -> dict[str, tuple]:
    """``{key: (old value, new value)}`` for each of ``keys`` whose value differs between two run records."""
    return {k: (_get(old, k), _get(new, k)) for k in keys if _get(old, k) != _get(new, k)}


def model_card(record: dict, model_name: str):
    """A ``huggingface_hub.ModelCard`` for a run folder, from its record (:func:`run_record`): the method, the
    student, the teacher, the preset, the dataset and the suite, with a link to the method's description."""
    from huggingface_hub import ModelCard, ModelCardData

    from .objectives import METHODS

    def hub_id(path):  # card metadata may only name Hub ids; a local folder is named in the text
        return path if path and not Path(path).exists() and path.count("/") == 1 else None

    method = record.get("method", "?")
    label = METHODS[method].label if method in METHODS else method
    suite = record.get("suite") or {}
    dataset = (record.get("dataset") or {}).get("path") or "the paper's OpenR1-Math prompts (LUFFY)"
    teacher = record.get("teacher_model")
    data = ModelCardData(base_model=hub_id(record.get("model")), datasets=hub_id(dataset), library_name="transformers",
                         model_name=model_name, tags=["tgpo", method, "trl", "generated_from_trainer"])
    commit = f", commit {suite['git_sha']}" if suite.get("git_sha") else ""
    text = "\n".join([
        f"---\n{data.to_yaml()}\n---",
        f"# {model_name}",
        "",
        f"- **Method:** {label} (`{method}`), described in [{METHOD_DOC}]({METHOD_DOC}) of the tgpo suite",
        f"- **Student (starting point):** `{record.get('model')}`",
        f"- **Teacher:** {f'`{teacher}`' if teacher else 'none (this method reads no teacher)'}",
        f"- **Settings preset:** {record.get('preset') or 'none (the config file settings)'}",
        f"- **Dataset:** `{dataset}`",
        f"- **Suite:** tgpo {suite.get('version', '?')}{commit}; the whole run config is in `{RUN_RECORD}`",
        "",
        "Trained with [TRL](https://github.com/huggingface/trl)'s GRPOTrainer loop and the tgpo trainer.",
    ])
    return ModelCard(text + "\n")
