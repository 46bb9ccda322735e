"""What every reproduction script shares: the command line, table configs, run plans, output names, manifests.

A script reads top to bottom — parse (:func:`parse_args`), plan (:func:`load_table`, :func:`plan_runs`), run
(:func:`run_plan`), write (:mod:`repro.tables`, :mod:`repro.plots`, :func:`save_runs`) — and is started by
:func:`cli`, which turns bad input into one line on stderr and exit code 2, before anything is archived or trained.

**Table configs** (``repro/configs/<profile>/<name>.yaml``; paper: ``repro/configs/paper/tables/<name>.yaml``) have
one schema in every profile, read with :func:`tgpo.run_config.read_yaml` (``base:``/``inherit:`` files merged
underneath; mappings merge key by key, lists — such as ``rows`` — are replaced)::

    title: Table 1                       # heading of the written table
    student: student                     # lab model name (tgpo.lab) | paper: Hub id of the base student
    teacher: teacher_cross               # lab: the rows' teacher unless a row names its own
    seeds: 3                             # default number of seeds (0..N-1); --seeds N overrides
    rows:                                # display order; a bare name stands for {method: NAME}
      - base                             # the untrained student (evaluated, not trained)
      - grpo
      - method: tgpo_adv                 # "base" or a name in tgpo.objectives.METHODS
        label: TGPO-Adv                  # optional; default: the method's label (+ " (<variant>)")
        variant: in-family               # optional: tells rows of one method apart (Table 3's teachers)
        teacher: teacher_in              # lab, optional: this row's teacher
        student: student_small           # lab, optional: this row's student
        train_size: 3840                 # lab, optional: this row's number of RL prompts
        trainer: {guidance_weight: 0.02} # lab, optional: TGPOConfig fields over the table's `trainer`
        config: ../7b_cross_tgpo_adv.yaml   # paper, required for a trained row: its training config (relative
                                            # to this file; `tgpo train` resolves it, --preset on top)
    columns: {task: label}               # lm-eval task -> column label, in order
    averages: {label: [column, ...]}     # unweighted means of columns, per seed
    eval: {tasks: tgpo_lab, limit: null, batch_size: 100}    # paper: {tasks, backend, model_args}
    train_size: 1600                     # lab: RL prompts per run (tgpo.lab.rl_dataset(n, data_seed))
    data_seed: 0                         # lab
    trainer: {...}                       # lab: TGPOConfig fields shared by every row
    reported_models: [...]               # paper: models of the reported-numbers section

A script may read more keys of its own (the sweep's ``knob``). The settings preset (``--preset``) applies on top of
every trained row's trainer settings (:func:`tgpo.run_config.resolve`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from repro import lab_runner, paper, run_lock, tables, versions
from repro.records import write_records
from tgpo.cli import positive_int

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "repro" / "configs"
RESULTS = REPO / "results"
PROFILES = ("lab", "smoke", "paper")
LAB_PROFILES = ("lab", "smoke")
#: The preset a profile's outputs are written under without a suffix (the lab compares methods under one
#: normalisation; the paper profile runs what the authors ran).
DEFAULT_PRESET = {"lab": "controlled", "smoke": "controlled", "paper": "authors_final"}
BASE = "base"
BASE_LABEL = "Base student"
#: The row every other row is compared with (paired differences).
REFERENCE_METHOD = "grpo"
ROW_KEYS = {"method", "label", "variant", "teacher", "student", "train_size", "trainer", "config"}


class UsageError(Exception):
    """Bad input (arguments, configs, missing models): one line, exit code 2."""


def runs_dir() -> Path:
    """Trained lab models, logs and the run cache (not committed); ``TGPO_RUNS_DIR`` moves it (tests use a tmp dir)."""
    return Path(os.environ.get("TGPO_RUNS_DIR") or REPO / "runs")


# ------------------------------------------------------------------------------------------ command line
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block (exit code 2 either way)
        raise UsageError(message)


def parse_args(script: str, doc: str, argv: Sequence[str] | None = None,
               profiles: Sequence[str] = PROFILES) -> argparse.Namespace:
    """The options every script takes. ``--preset`` defaults to the profile's."""
    from tgpo.run_config import presets

    parser = _Parser(prog=f"python -m repro.{script}", description=doc.strip().splitlines()[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--profile", choices=profiles, default="lab",
                        help="lab: tiny models on a CPU (minutes); smoke: a few steps, one seed (CI); "
                             "paper: the paper's Qwen models on GPUs")
    parser.add_argument("--preset", choices=[p for p in presets() if not p.startswith("_")],
                        help="settings preset of every trained row (default: controlled for lab/smoke, authors_final "
                             "for paper); another than the default writes <name>_<preset>.*")
    parser.add_argument("--seeds", type=positive_int,
                        help="number of seeds, 0..N-1 (default: the config's; another N writes <name>_<N>seeds.*)")
    parser.add_argument("--output-dir", type=Path, help="default: results/<profile>/")
    parser.add_argument("--workers", type=positive_int, help="parallel lab runs (default: CPU cores)")
    parser.add_argument("--no-cache", action="store_true",
                        help="run every lab run again, even when an identical one (same code, models, config, seed) "
                             "is cached")
    parser.add_argument("--cache-after", help=argparse.SUPPRESS)  # reproduce_all --no-cache: share this invocation's runs
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit without training")
    args = parser.parse_args(argv)
    args.preset = args.preset or DEFAULT_PRESET[args.profile]
    return args


def cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's ``main``; bad input becomes one line on stderr and exit code 2, a failed lab run exit code 1."""
    from tgpo.run_config import ConfigError

    name = Path(sys.modules[main.__module__].__file__).stem  # "table1", also when run as __main__
    try:
        return main(argv)
    except (UsageError, ConfigError, FileNotFoundError, run_lock.RunLocked) as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    except lab_runner.LabJobError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 1
    finally:
        run_lock.release_all()  # the script's locks (repro.run_lock), also when it ran inside another process


# ------------------------------------------------------------------------------------------ table configs
@dataclass(frozen=True)
class Row:
    """One row of a table (see the module docstring)."""

    key: str
    method: str
    label: str
    variant: str | None = None
    teacher: str | None = None
    student: str | None = None
    train_size: int | None = None
    trainer: dict = field(default_factory=dict, hash=False)
    config: Path | None = None

    @property
    def trained(self) -> bool:
        return self.method != BASE


@dataclass
class Table:
    """A table config, loaded and checked."""

    name: str
    profile: str
    path: Path
    data: dict  # the whole merged config (for the manifest and a script's own keys)
    rows: list[Row]

    def __getitem__(self, key):
        return self.data[key]

    def get(self, key, default=None):
        return self.data.get(key, default)

    @property
    def student(self) -> str:
        return self.data["student"]

    @property
    def teacher(self) -> str | None:
        return self.data.get("teacher")

    @property
    def seeds(self) -> int:
        return self.data["seeds"]

    @property
    def columns(self) -> dict[str, str]:
        return self.data["columns"]

    @property
    def averages(self) -> dict[str, list[str]]:
        return self.data.get("averages") or {}

    @property
    def eval(self) -> dict:
        return self.data.get("eval") or {}

    @property
    def trainer(self) -> dict:
        return self.data.get("trainer") or {}

    @property
    def labels(self) -> list[str]:
        return [row.label for row in self.rows]

    def select(self, methods: Iterable[str] | None = None) -> list[Row]:
        """The rows of the given methods (all rows without), in table order."""
        wanted = None if methods is None else set(methods)
        return [row for row in self.rows if wanted is None or row.method in wanted]


def table_path(profile: str, name: str) -> Path:
    return CONFIGS / profile / ("tables" if profile == "paper" else "") / f"{name}.yaml"


def load_table(profile: str, name: str, path: Path | None = None) -> Table:
    """``repro/configs/<profile>/<name>.yaml`` (paper: ``.../paper/tables/<name>.yaml``), checked; bad input raises
    :class:`UsageError` naming the file."""
    from tgpo.run_config import read_yaml

    path = Path(path or table_path(profile, name))
    if not path.exists():
        raise UsageError(f"no {profile} config for {name}: {path} does not exist")
    data = read_yaml(path)
    where = f"config {path}"
    for key in ("student", "rows", "columns", "seeds"):
        if key not in data:
            raise UsageError(f"{where}: '{key}' is required")
    if not isinstance(data["seeds"], int) or isinstance(data["seeds"], bool) or data["seeds"] < 1:
        raise UsageError(f"{where}: seeds={data['seeds']!r}; expected a whole number >= 1")
    if not isinstance(data["rows"], list) or not data["rows"]:
        raise UsageError(f"{where}: 'rows' must be a non-empty list")
    labels = set(data["columns"].values())
    for avg, members in (data.get("averages") or {}).items():
        unknown = [m for m in members if m not in labels]
        if unknown:
            raise UsageError(f"{where}: average {avg!r} names unknown columns {unknown}")
    rows = [parse_row(spec, path, profile) for spec in data["rows"]]
    for attr in ("key", "label"):
        values = [getattr(r, attr) for r in rows]
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise UsageError(f"{where}: rows with the same {attr}: {twice} (give them a `variant` or a `label`)")
    return Table(name=name, profile=profile, path=path, data=data, rows=rows)


def parse_row(spec, path: Path, profile: str) -> Row:
    """One entry of ``rows`` (a method name or a mapping, see the module docstring)."""
    from tgpo.objectives import METHODS

    spec = {"method": spec} if isinstance(spec, str) else spec
    where = f"config {path}: row {spec!r}"
    if not isinstance(spec, dict) or "method" not in spec:
        raise UsageError(f"{where}: expected a method name or a mapping with 'method'")
    unknown = set(spec) - ROW_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(ROW_KEYS)}")
    method = str(spec["method"])
    if method != BASE and method not in METHODS:
        raise UsageError(f"{where}: method {method!r}; expected base or one of {', '.join(METHODS)}")
    variant = None if spec.get("variant") is None else str(spec["variant"])
    label = spec.get("label") or (BASE_LABEL if method == BASE else METHODS[method].label)
    if variant is not None and not spec.get("label"):
        label = f"{label} ({variant})"
    trainer = spec.get("trainer") or {}
    if not isinstance(trainer, dict):
        raise UsageError(f"{where}: 'trainer' must be a mapping of TGPOConfig fields")
    config = spec.get("config")
    if profile == "paper":
        if trainer or any(spec.get(k) is not None for k in ("teacher", "student", "train_size")):
            raise UsageError(f"{where}: a paper row names its training config (`config`), not lab settings")
        if method != BASE and not config:
            raise UsageError(f"{where}: a trained paper row needs `config` (its training config file)")
    elif config:
        raise UsageError(f"{where}: a lab row takes `trainer` overrides, not a training config file")
    if config:
        config = (path.parent / str(config)).resolve()
        if not config.exists():
            raise UsageError(f"{where}: training config {config} does not exist")
    return Row(key=method if variant is None else f"{method}@{variant}", method=method, label=str(label),
               variant=variant, teacher=spec.get("teacher"), student=spec.get("student"),
               train_size=spec.get("train_size"), trainer=dict(trainer), config=config)


def seeds_of(args: argparse.Namespace, table: Table) -> list[int]:
    return list(range(args.seeds or table.seeds))


def output_stem(name: str, args: argparse.Namespace, table: Table) -> str:
    """``name``, plus ``_<preset>`` for a preset other than the profile's default and ``_<N>seeds`` for a seed count
    other than the config's, so such runs never overwrite the default outputs."""
    parts = [name]
    if args.preset != DEFAULT_PRESET[args.profile]:
        parts.append(args.preset)
    if args.seeds and args.seeds != table.seeds:
        parts.append(f"{args.seeds}seeds")
    return "_".join(parts)


def output_dir(args: argparse.Namespace) -> Path:
    return Path(args.output_dir or RESULTS / args.profile)


# ------------------------------------------------------------------------------------------ plans and runs
@dataclass
class Plan:
    """What a script will run: lab jobs or paper runs, for one table (or a selection of its rows)."""

    table: Table
    seeds: list[int]
    preset: str
    jobs: list  # repro.lab_runner.LabJob (lab, smoke) or repro.paper.PaperRun (paper)

    @property
    def lab(self) -> bool:
        return self.table.profile in LAB_PROFILES


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def lab_job(table: Table, row: Row, seed: int, preset: str):
    """The lab job of one row and seed (the row's student/teacher/trainer over the table's)."""

    student = row.student or table.student
    teacher = row.teacher or table.teacher
    name = "-".join(p for p in (_slug(row.key), student, teacher if row.trained else None, f"s{seed}") if p)
    return lab_runner.LabJob(
        name=name, row=row.key, label=row.label, variant=row.variant, method=row.method, seed=seed,
        student=student, teacher=teacher, preset=preset, trainer={**table.trainer, **row.trainer},
        train_size=row.train_size or table.get("train_size", 0), data_seed=table.get("data_seed", 0),
        eval_tasks=table.eval["tasks"], eval_limit=table.eval.get("limit"),
        eval_batch_size=table.eval.get("batch_size", 64), work_dir="",
    )


def plan_runs(table: Table, args: argparse.Namespace, rows: Sequence[Row] | None = None,
              stem: str | None = None) -> Plan:
    """Every (row, seed) of ``rows`` (default: the table's) as lab jobs or paper runs. The untrained student is
    evaluated once: greedy decoding does not depend on the seed."""
    rows = list(table.rows if rows is None else rows)
    seeds = seeds_of(args, table)
    pairs = [(row, seed) for row in rows for seed in (seeds if row.trained else seeds[:1])]
    if table.profile == "paper":
        eval_root = output_dir(args) / f"{stem or table.name}_eval"
        return Plan(table, seeds, args.preset, [paper.plan_run(table, row, seed, args.preset, eval_root)
                                                for row, seed in pairs])
    return Plan(table, seeds, args.preset, [lab_job(table, row, seed, args.preset) for row, seed in pairs])


def check_ready(plan: Plan) -> None:
    """Stop (one line) before anything is archived when a plan cannot run here: lab models not built, bad trainer
    settings; the paper profile without GPUs."""
    if plan.lab:
        from tgpo.config import TGPOConfig

        for job in plan.jobs:
            for name in {job.student, *([job.teacher] if job.reads_teacher and job.teacher else [])}:
                folder = lab_runner.model_dir(name)
                if not (folder / "config.json").exists():
                    raise UsageError(f"lab model {name!r} is not built ({folder}); build it with: tgpo lab build --only {name}")
        checked = set()
        for job in plan.jobs:  # every distinct trainer config must make a TGPOConfig (ranges, names) before any run
            if not job.trained:
                continue
            trainer = lab_runner.job_settings(job)["trainer"]
            marker = json.dumps(trainer, sort_keys=True, default=str)
            if marker in checked:
                continue
            checked.add(marker)
            try:
                with warnings.catch_warnings():  # library deprecation notes are not this check's business
                    warnings.simplefilter("ignore")
                    TGPOConfig(**{**trainer, "output_dir": str(runs_dir() / "check"), "use_cpu": True, "bf16": False})
            except (TypeError, ValueError) as err:
                raise UsageError(f"row {job.label!r}: {str(err).splitlines()[0]}") from None
        lab_runner.check_cache(plan.jobs, runs_dir() / plan.table.profile / "cache")  # corrupt records: aside now
        return
    missing = paper.requirements_missing()
    if missing:
        name = plan.table.name
        raise UsageError(f"the paper profile needs {'; '.join(missing)}; see its plan with "
                         f"`python -m repro.{name} --profile paper --dry-run` and repro/launch/README.md")


def print_plan(plan: Plan) -> int:
    if not plan.lab:
        return paper.print_plan(plan.jobs)
    for job in plan.jobs:
        trainer = lab_runner.job_settings(job).get("trainer", {})
        print(f"{job.name}: row={job.label!r} method={job.method} student={job.student} "
              f"teacher={job.teacher if job.reads_teacher else '-'} "
              f"preset={job.preset if job.trained else '-'} steps={trainer.get('max_steps', '-')} "
              f"eval={job.eval_tasks} limit={job.eval_limit}")
    return 0


def run_plan(plan: Plan, args: argparse.Namespace, desc: str) -> list[dict]:
    """Run (or reuse) every job of the plan; records in plan order (:mod:`repro.records`)."""
    if not plan.lab:
        return paper.run(plan.jobs)
    root = runs_dir() / plan.table.profile
    jobs = [replace(job, work_dir=str(root / "jobs" / job.name)) for job in plan.jobs]
    return lab_runner.run_jobs(jobs, root / "cache", workers=args.workers, desc=desc, use_cache=not args.no_cache,
                               fresh_after=args.cache_after)


# ------------------------------------------------------------------------------------------ a script's run
@dataclass
class Session:
    """What every script does before and after its own part: parsed options, the table config, the output stem, the
    plan, the (archived) output folder and the manifest; :meth:`run` runs the plan, :meth:`finish` saves the runs
    and the manifest."""

    name: str
    args: argparse.Namespace
    table: Table
    stem: str
    plan: Plan
    out_dir: Path
    manifest: Manifest

    def run(self, title: str) -> list[dict]:
        return run_plan(self.plan, self.args, desc=f"{title} ({self.args.profile}, {self.args.preset})")

    def finish(self, records: list[dict]) -> None:
        save_runs(records, self.out_dir, self.stem)
        self.manifest.write(self.out_dir, self.stem, records)


def start(name: str, doc: str, argv: Sequence[str] | None, suffixes: Sequence[str], *, table: str | None = None,
          profiles: Sequence[str] = PROFILES, rows: Callable[[Table], Sequence[Row]] | None = None) -> Session | int:
    """Parse, load the table config (``table``, default ``name``), plan; with ``--dry-run`` print the plan and return
    its exit code; else check that the plan can run here and archive earlier outputs (``<stem><suffix>``)."""
    args = parse_args(name, doc, argv, profiles=profiles)
    config = load_table(args.profile, table or name)
    stem = output_stem(name, args, config)
    plan = plan_runs(config, args, rows=rows(config) if rows else None, stem=stem)
    if args.dry_run:
        return print_plan(plan)
    check_ready(plan)
    run_lock.acquire(output_dir(args), "results")  # one run at a time into these outputs, held until exit
    if plan.lab:
        run_lock.acquire(runs_dir() / args.profile, "lab runs")  # and into its run cache (before anything moves)
    versions.report(name, RESULTS / args.profile / f"{stem}_manifest.json")  # against the committed results
    out_dir = archive(output_dir(args), [stem + s for s in suffixes])
    return Session(name, args, config, stem, plan, out_dir, Manifest(name, args, config, plan.seeds))


def method_table_main(name: str, doc: str, argv: Sequence[str] | None = None) -> int:
    """A Table-1-shaped script (rows: methods; columns: the table's splits or benchmarks), with training curves."""
    from repro import plots

    session = start(name, doc, argv, METHOD_TABLE_SUFFIXES)
    if isinstance(session, int):
        return session
    records = session.run(session.table["title"])
    print(write_method_table(records, session.table, session.args, session.out_dir, session.stem))
    if session.plan.lab:
        plots.plot_curves(plots.curves_frame(records), METHOD_TABLE_CURVES,
                          f"{session.table['title']}: training curves ({session.args.profile}, {session.args.preset})",
                          session.out_dir / f"{session.stem}_curves.png")
    session.finish(records)
    print(f"[{name}] wrote {session.stem}.* to {session.out_dir}")
    return 0


METHOD_TABLE_SUFFIXES = (".csv", ".md", "_runs.json", "_curves.png", "_manifest.json")
METHOD_TABLE_CURVES = ["reward", "completions/mean_length", "grad_norm", "entropy"]


# ------------------------------------------------------------------------------------------ outputs
def archive(out_dir: Path, names: Iterable[str]) -> Path:
    """Create ``out_dir``; earlier outputs of these names move to ``previous/<time>/`` (never overwritten). An output
    folder that is a file or cannot be written stops the script (one line) before anything moves."""
    from tgpo.outputs import archive_existing

    existing = Path(out_dir)
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--output-dir {out_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise UsageError(f"--output-dir {out_dir}: {existing} is not writable")
    archive_existing(out_dir, list(names))
    return out_dir


#: Folders whose changes are results, not code: a reproduction run writes several tables in turn, and the second
#: must not be stamped ``-dirty`` by the first.
OUTPUT_DIRS = ("results",)


@dataclass
class Manifest:
    """How a result was made: written next to it as ``<stem>_manifest.json``."""

    script: str
    args: argparse.Namespace
    table: Table
    seeds: list[int]
    started: float = field(default_factory=time.time)
    extra: dict = field(default_factory=dict)

    def write(self, out_dir: Path, stem: str, records: list[dict]) -> Path:
        from tgpo.provenance import git_sha, package_versions

        record = {
            "script": self.script,
            "command": " ".join(["python -m repro." + self.script, *sys.argv[1:]]),
            "profile": self.table.profile,
            "preset": self.args.preset,
            "seeds": self.seeds,
            "git_sha": git_sha(REPO, ignore=OUTPUT_DIRS),
            "started_utc": datetime.fromtimestamp(self.started, tz=timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.time() - self.started, 1),
            "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
            "versions": package_versions(),
            "config_file": str(self.table.path.relative_to(REPO) if self.table.path.is_relative_to(REPO)
                               else self.table.path),
            "config": self.table.data,
            "rows": row_provenance(records),
            "cache": cache_summary(records),
            **self.extra,
        }
        target = out_dir / f"{stem}_manifest.json"
        target.write_text(json.dumps(record, indent=2, default=str) + "\n")
        return target


def row_provenance(records: list[dict]) -> dict:
    """Per row label: how its cells were made — method, preset, models, the resolved trainer settings, and each
    run's seed, cache key and seconds."""
    rows: dict[str, dict] = {}
    for rec in records:
        entry = rows.setdefault(rec["label"], {
            "method": rec["method"], "preset": rec.get("preset") if rec["method"] != BASE else None,
            "student": rec.get("student"), "teacher": rec.get("teacher") if rec["method"] != BASE else None,
            "config": rec.get("config"), "trainer": rec.get("trainer_resolved"), "runs": []})
        entry["runs"].append({"seed": rec["seed"], "key": (rec.get("cache") or {}).get("key"),
                              "reused": (rec.get("cache") or {}).get("reused"),
                              "train_seconds": rec.get("train_seconds"), "eval_seconds": rec.get("eval_seconds")})
    return rows


def cache_summary(records: list[dict]) -> dict:
    cached = [r["cache"] for r in records if r.get("cache")]
    return {"runs": len(records), "reused": sum(bool(c["reused"]) for c in cached)}


def save_runs(records: list[dict], out_dir: Path, stem: str) -> Path:
    """Every run's record (scores, per-problem values, curves) as ``<stem>_runs.json``."""
    return write_records(records, out_dir / f"{stem}_runs.json")


def reported_for(name: str) -> tuple[list[str], list[str] | None]:
    """The benchmarks and models of the paper's reported numbers for table ``name`` (from its paper config)."""
    paper = load_table("paper", name)
    return [t.removeprefix("tgpo_") for t in paper.columns], paper.get("reported_models")


def reference_label(table: Table) -> str | None:
    """The label of the row paired differences are taken from: the row of the config's ``reference_variant`` where it
    names one (Figure 5: the paper's schedule), else the GRPO row; None when the table has none."""
    wanted = table.get("reference_variant")
    if wanted is None:
        rows = [row for row in table.rows if row.method == REFERENCE_METHOD and row.variant is None]
    else:
        rows = [row for row in table.rows if row.variant == wanted]
        if not rows:
            raise UsageError(f"{table.path}: reference_variant {wanted!r} names none of the rows' variants "
                             f"{[row.variant for row in table.rows]}")
    return rows[0].label if rows else None


def write_method_table(records: list[dict], table: Table, args: argparse.Namespace, out_dir: Path, stem: str) -> str:
    """``<stem>.csv`` and ``<stem>.md`` of a Table-1-shaped table (rows: methods): scores with 95% intervals, paired
    differences from GRPO, the detectable difference and the paper's reported numbers. Returns the Markdown."""
    teacher = f", cross-family teacher {table.teacher}" if table.teacher and table.profile != "paper" else ""
    title = f"{table['title']} — {table.profile} profile, preset {args.preset} (student {table.student}{teacher})"
    also = [row.label for row in table.rows if row.method in (table.get("paired_also") or []) and row.variant is None]
    frame, text = tables.method_table(records, table.columns, table.averages, table.labels,
                                      reference=reference_label(table), title=title, reported=reported_for(table.name),
                                      also=also)
    frame.round(3).to_csv(out_dir / f"{stem}.csv", index_label="row")
    (out_dir / f"{stem}.md").write_text(text)
    return text
