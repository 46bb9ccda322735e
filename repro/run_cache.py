"""A content-addressed cache of lab runs: a run is reused only if nothing that can change its result changed.

A run's key has three parts, each a hash of content (never of file times):

* ``settings`` — the job as the trainer and the evaluation see it: method, seed, preset, the resolved trainer config
  (:func:`tgpo.run_config.resolve`, preset applied; the run's own folder left out), student and teacher names, RL
  data size and seed, eval tasks and limit (see :func:`repro.lab_runner.job_settings`);
* ``code`` — the bytes of every file the run executes or reads: ``tgpo/**/*.py``, the package's resources, the lab's
  lm-eval task folder (YAML and utils) and the lab runner itself (:func:`source_files`);
* ``models`` — the bytes of the student's and (for a method that reads one) the teacher's model files;
* ``libraries`` — the installed versions of the libraries that compute a run (:data:`KEY_PACKAGES`): a cache filled
  before an upgrade is not reused after it.

Records live in ``<root>/<settings>/<code>-<models>-<libraries>.json``, so a miss can say why: the same settings
were cached under other code, other model files or other library versions, or never. A record that cannot be read (not JSON, not a run record) is a
miss: it is moved aside to ``<name>.corrupt-<time>`` with one line naming it, and the run is done again.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

#: Files of a model folder that are not the model: build metadata (``tgpo lab measure`` rewrites its metrics).
NOT_MODEL_FILES = ("build_info.json",)
#: Libraries whose versions are part of a run's key (an upgrade can move results: issue-tracked, e.g. transformers
#: 5.24 -> 5.25 moved Table 1 rows by up to 4 points).
KEY_PACKAGES = ("torch", "transformers", "trl", "accelerate", "math-verify")
#: Keys every run record holds (repro.lab_runner.run_lab_job); a record without them is corrupt.
RECORD_KEYS = ("name", "method", "seed", "scores", "problems", "curves")
_PREFIX = 16


def source_files() -> dict[str, Path]:
    """Every file whose content can change a lab run's result (see the module docstring), by a name that does not
    depend on where the checkout lies (``tgpo/lab/models.py``, ``tasks/lab/utils.py``, ``repro/lab_runner.py``)."""
    import tgpo
    from tgpo.lab import TASKS_DIR

    package = Path(tgpo.__file__).resolve().parent
    files = {}
    for root, paths in (
        (package.parent, package.rglob("*.py")),
        (package.parent, (package / "resources").rglob("*")),
        (Path(TASKS_DIR).resolve().parent, (Path(TASKS_DIR).resolve() / "lab").rglob("*")),
    ):
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                files[path.relative_to(root).as_posix()] = path
    files["repro/lab_runner.py"] = Path(__file__).resolve().with_name("lab_runner.py")  # what runs the jobs
    return files


def hash_files(files: dict[str, Path]) -> str:
    """One hash over the names and bytes of ``files`` (name -> path)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(Path(files[name]).read_bytes()).digest())
    return digest.hexdigest()[:_PREFIX]


def code_hash(files: dict[str, Path] | None = None) -> str:
    return hash_files(source_files() if files is None else files)


def model_hash(folder: str | Path) -> str:
    """Hash of a model folder's files (weights, config, tokenizer), build metadata excluded."""
    folder = Path(folder)
    files = {p.name: p for p in folder.iterdir()
             if p.is_file() and p.name not in NOT_MODEL_FILES and not p.name.startswith(".")}
    if not files:
        raise FileNotFoundError(f"model folder {folder} holds no model files")
    return hash_files(files)


def library_versions() -> dict[str, str]:
    """The installed versions of :data:`KEY_PACKAGES` (absent ones are left out)."""
    from tgpo.provenance import package_versions

    return {k: v for k, v in package_versions(KEY_PACKAGES).items() if k in KEY_PACKAGES}


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:_PREFIX]


@dataclass(frozen=True)
class RunKey:
    settings: str
    code: str
    models: str
    libraries: str

    def __str__(self) -> str:
        return f"{self.settings}/{self.code}-{self.models}-{self.libraries}"

    @property
    def parts(self) -> dict[str, str]:
        """What a miss compares, by the words of its reason."""
        return {"code": self.code, "model files": self.models, "library versions": self.libraries}


class RunCache:
    """Run records by :class:`RunKey` under ``root``. ``fresh_after`` (UTC ISO time): only records finished after it
    count (``--no-cache`` across several scripts: runs made earlier in the same invocation are still shared)."""

    def __init__(self, root: Path, files: dict[str, Path] | None = None, fresh_after: str | None = None):
        self.root = Path(root)
        self.code = code_hash(files)
        self.libraries = settings_hash(library_versions())
        self.fresh_after = fresh_after
        self._models: dict[str, str] = {}

    def key(self, settings: dict, model_folders: list[str | Path]) -> RunKey:
        parts = []
        for folder in model_folders:
            folder = str(Path(folder).resolve())
            if folder not in self._models:
                self._models[folder] = model_hash(folder)
            parts.append(self._models[folder])
        return RunKey(settings_hash(settings), self.code, hashlib.sha256("/".join(parts).encode()).hexdigest()[:_PREFIX],
                      self.libraries)

    def _path(self, key: RunKey) -> Path:
        return self.root / key.settings / f"{key.code}-{key.models}-{key.libraries}.json"

    def load(self, key: RunKey) -> dict | None:
        path = self._path(key)
        if not path.exists():
            return None
        record = self._read(path)
        if record is None:
            return None
        if self.fresh_after and record.get("cached_utc", "") < self.fresh_after:
            return None
        return record

    @staticmethod
    def _read(path: Path) -> dict | None:
        """The record in ``path``; a corrupt one is moved aside (one line on stderr naming it) and reads as None."""
        try:
            record = json.loads(path.read_text())
            problem = None if isinstance(record, dict) else "not a JSON object"
            problem = problem or next((f"no {k!r}" for k in RECORD_KEYS if k not in record), None)
        except (OSError, ValueError) as err:  # ValueError: JSON and UTF-8 decoding
            record, problem = None, str(err).splitlines()[0] if str(err) else type(err).__name__
        if problem is None:
            return record
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        path.replace(target)
        print(f"run cache: corrupt record {path} ({problem}) moved to {target.name}; that run is done again",
              file=sys.stderr, flush=True)
        return None

    def store(self, key: RunKey, record: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamped = {**record, "cached_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stamped))
        tmp.replace(path)  # a killed run never leaves half a record

    def why_missing(self, key: RunKey) -> str:
        """Why ``key`` has no usable record, in a few words."""
        if self.fresh_after and self._path(key).exists():
            return "cache not used (--no-cache)"
        cached = [p.stem.split("-") for p in (self.root / key.settings).glob("*.json")]
        if not cached:
            return "no cached run with these settings"
        # the cached run closest to this key (a record from before libraries were keyed has no third part)
        changed = min(([name for (name, part), theirs in zip(key.parts.items(), [*stem, None, None])
                        if part != theirs] for stem in cached), key=len)
        if not changed:
            return "its cached record was unusable"
        words = ", ".join(changed[:-1]) + " and " + changed[-1] if len(changed) > 1 else changed[0]
        return f"{words} changed since the cached runs"


def reuse_report(n_jobs: int, reused: int, reasons: list[str], shared: int = 0, use_cache: bool = True) -> str:
    """The log line: how many runs were reused and why the others run."""
    if not use_cache:
        return f"cache not used (--no-cache): {n_jobs - shared} of {n_jobs} runs to run" + _shared(shared)
    if reused == n_jobs:
        return f"{reused} of {n_jobs} runs reused (same code, models, config, seed)"
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    why = "; ".join(f"{reason} ({n})" for reason, n in counts.items())
    return f"{reused} of {n_jobs} runs reused; {len(reasons)} to run: {why}" + _shared(shared)


def _shared(shared: int) -> str:
    return f"; {shared} identical runs in this plan shared" if shared else ""
