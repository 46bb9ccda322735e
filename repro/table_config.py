"""Table configs: one schema for every profile, loaded and checked.

**Table configs** (``repro/configs/<profile>/<name>.yaml``; paper: ``repro/configs/paper/tables/<name>.yaml``) have
one schema in every profile, read with :func:`tgpo.run_config.read_yaml` (``base:``/``inherit:`` files merged
underneath; mappings merge key by key, lists — such as ``rows`` — are replaced)::

    title: Table 1                       # heading of the written table
    student: student                     # lab model name (tgpo.lab) | paper: Hub id of the base student
    teacher: teacher_cross               # lab: the rows' teacher unless a row names its own
    seeds: 3                             # default number of seeds (0..N-1); --seeds N overrides
    all_methods_except: [luffy]          # lab, optional: methods the `all_methods` row leaves out
    rows:                                # display order; a bare name stands for {method: NAME}
      - base                             # the untrained student (evaluated, not trained)
      - grpo
      - all_methods                      # lab: every registered method no other row names (registry order)
      - method: tgpo_adv                 # "base" or a name in tgpo.objectives.METHODS
        label: TGPO-Adv                  # optional; default: the method's label (+ " (<variant>)")
        variant: in-family               # optional: tells rows of one method apart (Table 3's teachers)
        teacher: teacher_in              # lab, optional: this row's teacher
        student: student_small           # lab, optional: this row's student
        train_size: 3840                 # lab, optional: this row's number of RL prompts
        rl_split: k5                     # lab, optional: this row's RL split (tgpo.lab.world.rl_split)
        trainer: {guidance_weight: 0.02} # lab, optional: TGPOConfig fields over the table's `trainer`
        config: ../7b_cross_tgpo_adv.yaml   # paper, required for a trained row: its training config (relative
                                            # to this file; `tgpo train` resolves it, --preset on top)
    columns: {task: label}               # lm-eval task -> column label, in order
    averages: {label: [column, ...]}     # unweighted means of columns, per seed
    eval: {tasks: tgpo_lab, limit: null, batch_size: 100}    # paper: {tasks, backend, model_args}
    train_size: 1600                     # lab: RL prompts per run, drawn i.i.d. from the RL split
    rl_split: k4                         # lab: the RL split (tgpo.lab.world.rl_split: k4, k5, k4+k5, ...); default k4
    data_seed: 0                         # lab
    trainer: {...}                       # lab: TGPOConfig fields shared by every row
    reported_models: [...]               # paper: models of the reported-numbers section

A script may read more keys of its own (the sweep's ``knob``). The settings preset (``--preset``) applies on top of
every trained row's trainer settings (:func:`tgpo.run_config.resolve`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from repro.paths import CONFIGS

PROFILES = ("lab", "smoke", "paper")
LAB_PROFILES = ("lab", "smoke")
#: The preset a profile's outputs are written under without a suffix (the lab compares methods under one
#: normalisation; the paper profile runs what the authors ran).
DEFAULT_PRESET = {"lab": "controlled", "smoke": "controlled", "paper": "authors_final"}
BASE = "base"
#: A lab table row standing for every registered method that no other row names (:func:`expand_rows`).
ALL_METHODS = "all_methods"
BASE_LABEL = "Base student"
#: The row every other row is compared with (paired differences).
REFERENCE_METHOD = "grpo"
ROW_KEYS = {"method", "label", "variant", "teacher", "student", "train_size", "rl_split", "trainer", "config"}
#: The lab's RL split when a config names none: the k=4 sums Table 1 was first built on (``rl_train``).
DEFAULT_RL_SPLIT = "k4"


class UsageError(Exception):
    """Bad input (arguments, configs, missing models): one line, exit code 2."""



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
    rl_split: str | None = None
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
    def rl_split(self) -> str:
        return self.data.get("rl_split") or DEFAULT_RL_SPLIT

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
    if data.get("rl_split") is not None:
        check_rl_split(data["rl_split"], where)
    rows = [parse_row(spec, path, profile)
            for spec in expand_rows(data["rows"], where, profile, data.get("all_methods_except"))]
    for attr in ("key", "label"):
        values = [getattr(r, attr) for r in rows]
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise UsageError(f"{where}: rows with the same {attr}: {twice} (give them a `variant` or a `label`)")
    return Table(name=name, profile=profile, path=path, data=data, rows=rows)


def expand_rows(rows: list, where: str, profile: str, leave_out=None) -> list:
    """``rows`` with the entry :data:`ALL_METHODS` replaced by every registered method (``tgpo.objectives.METHODS``,
    in its order) that no other row names and ``leave_out`` (the config's ``all_methods_except``) does not list: a lab
    table that lists it trains any method as soon as it is registered."""
    from tgpo.objectives import METHODS, canonical_method

    left_out = _left_out(leave_out, where)
    if ALL_METHODS not in rows:
        if left_out:
            raise UsageError(f"{where}: 'all_methods_except' needs an '{ALL_METHODS}' row to leave methods out of")
        return rows
    if profile == "paper":
        raise UsageError(f"{where}: '{ALL_METHODS}' is for lab tables; a paper row names its training config")
    named = {canonical_method(r if isinstance(r, str) else r.get("method", "")) for r in rows if r != ALL_METHODS}
    at = rows.index(ALL_METHODS)
    return [*rows[:at], *(m for m in METHODS if m not in named | left_out),
            *(r for r in rows[at + 1:] if r != ALL_METHODS)]


def _left_out(names, where: str) -> set[str]:
    """The registered methods of a config's ``all_methods_except`` (deprecated names accepted), else UsageError."""
    from tgpo.objectives import METHODS, canonical_method

    if names is None:
        return set()
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UsageError(f"{where}: all_methods_except={names!r}; expected a list of method names")
    canonical = {name: canonical_method(name) for name in names}
    unknown = [name for name, method in canonical.items() if method not in METHODS]
    if unknown:
        raise UsageError(f"{where}: all_methods_except names unknown methods {unknown}; expected some of "
                         f"{', '.join(METHODS)}")
    return set(canonical.values())


def parse_row(spec, path: Path, profile: str) -> Row:
    """One entry of ``rows`` (a method name or a mapping, see the module docstring)."""
    from tgpo.objectives import METHODS, canonical_method

    spec = {"method": spec} if isinstance(spec, str) else spec
    where = f"config {path}: row {spec!r}"
    if not isinstance(spec, dict) or "method" not in spec:
        raise UsageError(f"{where}: expected a method name or a mapping with 'method'")
    unknown = set(spec) - ROW_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(ROW_KEYS)}")
    method = str(spec["method"]) if str(spec["method"]) == BASE else canonical_method(spec["method"])
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
        if trainer or any(spec.get(k) is not None for k in ("teacher", "student", "train_size", "rl_split")):
            raise UsageError(f"{where}: a paper row names its training config (`config`), not lab settings")
        if method != BASE and not config:
            raise UsageError(f"{where}: a trained paper row needs `config` (its training config file)")
    elif config:
        raise UsageError(f"{where}: a lab row takes `trainer` overrides, not a training config file")
    if spec.get("rl_split") is not None:
        check_rl_split(spec["rl_split"], where)
    if config:
        config = (path.parent / str(config)).resolve()
        if not config.exists():
            raise UsageError(f"{where}: training config {config} does not exist")
    return Row(key=method if variant is None else f"{method}@{variant}", method=method, label=str(label),
               variant=variant, teacher=spec.get("teacher"), student=spec.get("student"),
               train_size=spec.get("train_size"), rl_split=spec.get("rl_split"), trainer=dict(trainer),
               config=config)


def check_rl_split(spec, where: str) -> None:
    """A lab RL split spec (``k4``, ``k5``, ``k4+k5``; :func:`tgpo.lab.world.parse_rl_split`), else a one-line
    :class:`UsageError` naming the config."""
    from tgpo.lab.world import parse_rl_split

    try:
        parse_rl_split(str(spec))
    except ValueError as err:
        raise UsageError(f"{where}: {err}") from None



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

