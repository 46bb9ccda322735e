"""Tables from run records: per-cell means with 95% intervals, paired differences from a reference row, Markdown.

Records are :mod:`repro.records` dicts; scores become percentages here. A table's columns are lm-eval tasks
(``columns``: task -> label) and unweighted averages of columns (``averages``: label -> member labels, per seed).

Intervals (:mod:`repro.stats`): a cell of a row with several runs is a t interval over its seeds; a row with one run
(the untrained student, evaluated once and greedily: no seed noise) gets the interval over its problems. A paired difference from the
reference row is a t interval over seeds of the per-seed differences (a once-evaluated row counts as the same value
at every seed); in a one-seed table it is the interval over the per-problem differences (problem sampling only).
:func:`bootstrap_frame` adds the two-level paired bootstrap for comparison.

Reported numbers are read from ``tgpo/resources/paper_reference.csv`` and printed in a separate, labelled section;
a cell the source does not state stays empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from repro import stats
from tgpo.resources import PAPER_REFERENCE_CSV


# ------------------------------------------------------------------------------------------------ frames
def scores_frame(records: list[dict]) -> pd.DataFrame:
    """Long frame ``row, seed, task, score`` (score in percent; ``row`` is the record's label)."""
    rows = [{"row": rec["label"], "seed": rec["seed"], "task": task, "score": 100.0 * score}
            for rec in records for task, score in rec["scores"].items()]
    return pd.DataFrame(rows, columns=["row", "seed", "task", "score"])


def wide_scores(records: list[dict], columns: Mapping[str, str], averages: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Per (row, seed): each column's score and each average of columns, in percent."""
    long = scores_frame(records)
    wide = long[long.task.isin(list(columns))].pivot_table(index=["row", "seed"], columns="task", values="score")
    wide = wide.rename(columns=dict(columns))
    wide = wide[[c for c in columns.values() if c in wide.columns]]
    for label, members in averages.items():
        wide[label] = wide[list(members)].mean(axis=1)
    wide.columns.name = None
    return wide


def _problems(record: dict, tasks: Sequence[str]) -> list[np.ndarray] | None:
    values = record.get("problems") or {}
    if not all(t in values for t in tasks):
        return None
    return [100.0 * np.asarray(values[t], dtype=float) for t in tasks]


def _column_tasks(columns: Mapping[str, str], averages: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Column label -> the tasks it averages (a plain column: its own task)."""
    task_of = {label: task for task, label in columns.items()}
    out = {label: [task] for task, label in columns.items()}
    out.update({label: [task_of[m] for m in members] for label, members in averages.items()})
    return out


def summary_table(
    records: list[dict],
    columns: Mapping[str, str],
    averages: Mapping[str, Sequence[str]],
    row_order: Sequence[str],
    reference: str | None = None,
    level: float = stats.LEVEL,
) -> pd.DataFrame:
    """Per row (label, in ``row_order``): ``<col> mean``, ``<col> std`` (over seeds), ``<col> ci`` (half-width of the
    ``level`` interval, see the module docstring) and ``n_seeds``; with a ``reference`` row also ``Δ <col>`` and
    ``Δ <col> ci`` (paired difference row − reference over the reference's seeds) for every column."""
    wide = wide_scores(records, columns, averages)
    labels = list(wide.columns)
    tasks = _column_tasks(columns, averages)
    by_label = {}
    for rec in records:
        by_label.setdefault(rec["label"], []).append(rec)
    ref = wide.xs(reference, level="row") if reference is not None and reference in wide.index.get_level_values("row") else None
    out = {}
    for row in [r for r in row_order if r in wide.index.get_level_values("row")]:
        per_seed = wide.xs(row, level="row")
        cells: dict[str, float] = {}
        for col in labels:
            values = per_seed[col].to_numpy()
            if len(values) >= 2:
                interval = stats.t_interval(values, level)
            else:
                problems = _problems(by_label[row][0], tasks[col])
                interval = stats.problem_interval(problems, level) if problems else stats.t_interval(values, level)
            cells[f"{col} mean"] = float(values.mean())
            cells[f"{col} std"] = float(per_seed[col].std(ddof=1)) if len(values) >= 2 else 0.0
            cells[f"{col} ci"] = interval.half
            if ref is not None:
                diff = _paired(per_seed[col], ref[col], level, by_label[row], by_label[reference], tasks[col])
                cells[f"Δ {col}"], cells[f"Δ {col} ci"], cells[f"Δ {col} se"] = diff.mean, diff.half, diff.se
        cells["n_seeds"] = len(per_seed)
        out[row] = cells
    return pd.DataFrame.from_dict(out, orient="index")


def _paired(values: pd.Series, reference: pd.Series, level: float, records: list[dict] | None = None,
            reference_records: list[dict] | None = None, tasks: Sequence[str] = ()) -> stats.Interval:
    """Row − reference, paired by seed; a row with a single (seed-independent) value is compared at every seed.

    When the reference has one run too (a one-seed table), there are no seeds to pair: the two runs are paired by
    problem instead (:func:`repro.stats.paired_problem_interval`), an interval over problems only."""
    if len(values) == 1 and len(reference) == 1 and records and reference_records:
        mine, theirs = _problems(records[0], tasks), _problems(reference_records[0], tasks)
        if mine and theirs:
            return stats.paired_problem_interval(mine, theirs, level)
    if len(values) == 1:
        values = pd.Series(values.iloc[0], index=reference.index)
    common = values.index.intersection(reference.index)
    return stats.paired_t_interval(values[common].to_numpy(), reference[common].to_numpy(), level)


def bootstrap_frame(
    records: list[dict],
    columns: Mapping[str, str],
    averages: Mapping[str, Sequence[str]],
    row_order: Sequence[str],
    reference: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """The two-level paired bootstrap (:func:`repro.stats.paired_bootstrap`) of every column: ``<col> boot low/high``
    and, with a reference, ``Δ <col> boot low/high``. Rows without per-problem values are left out."""
    tasks = _column_tasks(columns, averages)
    by_label: dict[str, dict[int, dict]] = {}
    for rec in records:
        by_label.setdefault(rec["label"], {})[rec["seed"]] = rec
    rows = [r for r in row_order if r in by_label and all(rec.get("problems") for rec in by_label[r].values())]
    seeds = sorted({s for r in rows for s in by_label[r]})
    if not rows or not seeds:
        return pd.DataFrame()
    ref_index = rows.index(reference) if reference in rows else None
    out = pd.DataFrame(index=rows)
    for col, members in tasks.items():
        arrays = {}
        for task in members:
            # one array [rows, seeds, problems]; a once-evaluated row repeats along the seed axis
            arrays[task] = np.stack([
                np.stack([100.0 * np.asarray((by_label[r].get(s) or next(iter(by_label[r].values())))["problems"][task],
                                             dtype=float) for s in seeds]) for r in rows])
        boot = stats.paired_bootstrap(arrays, ref_index, n_boot=n_boot, seed=seed)
        out[f"{col} boot low"], out[f"{col} boot high"] = boot["low"], boot["high"]
        if ref_index is not None:
            out[f"Δ {col} boot low"], out[f"Δ {col} boot high"] = boot["diff_low"], boot["diff_high"]
    return out


# ---------------------------------------------------------------------------------------------- markdown
def cell(mean: float, half: float, digits: int = 1, signed: bool = False) -> str:
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return fmt.format(mean) if np.isnan(half) else f"{fmt.format(mean)} ± {half:.{digits}f}"


def column_labels(table: pd.DataFrame) -> list[str]:
    return [c.removesuffix(" mean") for c in table.columns if c.endswith(" mean") and not c.startswith("Δ ")]


def scores_markdown(table: pd.DataFrame, digits: int = 1) -> str:
    """``mean ± half-width`` per cell and the number of seeds, as a Markdown table."""
    labels = column_labels(table)
    cells = pd.DataFrame({label: [cell(r[f"{label} mean"], r[f"{label} ci"], digits) for _, r in table.iterrows()]
                          for label in labels}, index=table.index)
    cells["seeds"] = table["n_seeds"].astype(int)
    return cells.rename_axis("").to_markdown(disable_numparse=True)


def differences_markdown(table: pd.DataFrame, reference: str, digits: int = 1) -> str:
    """``Δ ± half-width`` from the reference row per cell (the reference row shows ``—``)."""
    labels = column_labels(table)
    cells = pd.DataFrame({
        f"Δ {label}": ["—" if row == reference else cell(r[f"Δ {label}"], r[f"Δ {label} ci"], digits, signed=True)
                       for row, r in table.iterrows()]
        for label in labels}, index=table.index)
    return cells.rename_axis("").to_markdown(disable_numparse=True)


def median_paired_half_width(table: pd.DataFrame, column: str, reference: str) -> tuple[float, float, int]:
    """``(median half-width, median standard error, seeds)`` of the paired differences in ``column`` over the rows
    other than the reference (NaN when there are none)."""
    others = table.drop(index=[reference], errors="ignore")
    if others.empty or f"Δ {column} ci" not in others:
        return float("nan"), float("nan"), 0
    return (float(others[f"Δ {column} ci"].median()), float(others[f"Δ {column} se"].median()),
            int(table.loc[reference, "n_seeds"]) if reference in table.index else 0)


def reported_section(benchmarks: list[str], models: list[str] | None = None) -> str:
    """The paper's and related work's reported numbers for ``benchmarks``, as a labelled Markdown table."""
    ref = pd.read_csv(PAPER_REFERENCE_CSV)
    ref = ref[ref.benchmark.isin(benchmarks)]
    if models:
        ref = ref[ref.model.isin(models)]
    if ref.empty:
        return "_No reported numbers for these benchmarks in paper_reference.csv._"
    wide = ref.pivot_table(index=["model", "method"], columns="benchmark", values="score", aggfunc="first")
    wide = wide[[b for b in benchmarks if b in wide.columns]]
    wide = wide.reset_index().astype(object)
    table = wide.where(wide.notna(), None).to_markdown(index=False, floatfmt=".1f", missingval="")
    sources = sorted(ref.source.dropna().unique())
    notes = sorted(n for n in ref.note.dropna().unique() if str(n).strip())
    foot = ["", "Reported, not measured by this repo. Sources: " + "; ".join(sources) + "."]
    if notes:
        foot.append("Notes: " + "; ".join(notes) + ".")
    foot.append("An empty cell means the source does not state that number.")
    return "\n".join([table, *foot])


# ------------------------------------------------------------------------------------------- documents
INTERVAL_NOTE = (
    "Intervals are 95%: Student's t over seeds for rows with several runs; a row with one run (the untrained student, "
    "evaluated once and greedily; any row of a one-seed table) gets the interval over its problems. A difference from "
    "{ref} is a t interval over the per-seed paired differences (same seed, same data order). The t interval is used rather than the two-level bootstrap over seeds and problems "
    "(in the CSV as `boot` columns) because with a handful of seeds a bootstrap's interval is too narrow: it cannot "
    "see more spread than the few seeds show, where t widens for it."
)


ONE_SEED_INTERVAL_NOTE = (
    "Intervals are 95% and cover problem sampling only: with one run per row, a cell is the normal interval over its "
    "problems and a difference from {ref} pairs the two runs problem by problem (the same eval problems). They do not "
    "include seed-to-seed variation (how far another training seed moves a row); a run with `--seeds N` measures "
    "that with t intervals over seeds."
)


def interval_note(table: pd.DataFrame, reference: str | None) -> str:
    """How this table's intervals were made: over seeds, or over problems when its reference row has one run."""
    one_seed = reference is not None and reference in table.index and int(table.loc[reference, "n_seeds"]) == 1
    return (ONE_SEED_INTERVAL_NOTE if one_seed else INTERVAL_NOTE).format(ref=reference or "a reference row")


def problems_per_column(records: list[dict], columns: Mapping[str, str]) -> dict[str, int]:
    """Column label -> number of problems evaluated (from the records' per-problem values)."""
    counts = {}
    for task, label in columns.items():
        sizes = {len(rec["problems"][task]) for rec in records if task in (rec.get("problems") or {})}
        counts[label] = max(sizes) if sizes else 0
    return counts


def detectability_note(table: pd.DataFrame, column: str, reference: str) -> str:
    """The smallest difference in ``column`` the table can detect, from its median paired standard error."""
    half, se, n = median_paired_half_width(table, column, reference)
    if not n or np.isnan(se):
        return ""
    if n == 1:
        detectable = stats.detectable_difference_over_problems(se)
        return (f"Power: the median half-width of a paired difference in {column} is {half:.1f} points over problems; "
                f"with that standard error ({se:.1f}), a true difference of {detectable:.1f} points between two runs "
                f"is detected (interval excluding 0) with 80% probability. With one seed this is about the runs, not "
                f"the methods: seed-to-seed variation is not in these intervals.")
    detectable = stats.detectable_difference(se, n)
    return (f"Power: the median half-width of a paired difference in {column} is {half:.1f} points; with {n} seeds "
            f"and that standard error ({se:.1f}), a true difference of {detectable:.1f} points is detected "
            f"(interval excluding 0) with 80% probability — smaller differences are not resolved by this table.")


def method_table(records: list[dict], columns: Mapping[str, str], averages: Mapping[str, Sequence[str]],
                 row_order: Sequence[str], reference: str | None, title: str,
                 reported: tuple[list[str], list[str] | None] | None = None,
                 also: Sequence[str] = ()) -> tuple[pd.DataFrame, str]:
    """A Table-1-shaped result: ``(frame for the CSV, Markdown document)`` with scores ± 95% intervals, paired
    differences from ``reference`` (when it is a row) and from each row of ``also`` (e.g. TGPO-Reg, to judge it
    against every baseline), the interval method, the detectable difference on the first average column and,
    optionally, the paper's reported numbers."""
    summary = summary_table(records, columns, averages, row_order, reference)
    has_reference = reference is not None and reference in summary.index
    frame = summary.join(bootstrap_frame(records, columns, averages, row_order, reference if has_reference else None))
    also = [row for row in also if row in summary.index and row != reference]
    against = {row: summary_table(records, columns, averages, row_order, row) for row in also}
    for row, other in against.items():  # the CSV keeps them as "vs <row> Δ <col>" columns
        deltas = other[[c for c in other.columns if c.startswith("Δ ")]]
        frame = frame.join(deltas.rename(columns=lambda c, r=row: f"vs {r} {c}"))
    sizes = problems_per_column(records, columns)
    size_text = ", ".join(f"{label} {n}" for label, n in sizes.items())
    md = [f"# {title}", "", "Greedy pass@1 (%), mean ± half-width of the 95% interval.", "", scores_markdown(summary), ""]
    if has_reference:
        md += [f"## Paired difference from {reference} (percentage points, ± half-width of the 95% interval)", "",
               differences_markdown(summary, reference), ""]
    for row, other in against.items():
        md += [f"## Paired difference from {row} (row − {row}, percentage points, ± half-width of the 95% interval)",
               "", differences_markdown(other, row), ""]
    md.append(f"Problems per column: {size_text}. " + interval_note(summary, reference))
    headline = next(iter(averages), None)
    if has_reference and headline:
        note = detectability_note(summary, headline, reference)
        if note:
            md += ["", note]
    md += ["", "Measured by this repo (see the manifest for how each row was made)."]
    if reported:
        benchmarks, models = reported
        md += ["", "## Reported by the paper and related work (not measured here)", "",
               "The paper profile's benchmarks and models, from `tgpo/resources/paper_reference.csv`; the lab's tiny "
               "models and synthetic splits are not comparable to them cell by cell.", "",
               reported_section(benchmarks, models)]
    return frame, "\n".join(md) + "\n"
