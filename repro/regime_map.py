"""Regime map (beyond the paper): where teacher guidance helps and where it cannot. Cells are a kind of divergence
(in-family, style-only, content-moving teacher) x a reward density (RL split); in each cell every guided method is
paired with GRPO on the same split and seeds, as a 95% t interval over seeds, beside the cell's measured divergence
(from its committed regime file).

    python -m repro.regime_map [--seeds N --workers N --no-cache]
    python -m repro.regime_map --redraw              # redraw the figure from the committed runs

Cells, methods and seeds: ``repro/configs/lab/regime_map.yaml``. Outputs in ``results/lab/``: ``regime_map.png``,
``regime_map.csv``, ``regime_map.md``, ``regime_map_runs.json``, ``regime_map_manifest.json``.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from repro import options, plots, regime, stats, table_config, tables
from repro.session import start

NAME = "regime_map"
SUFFIXES = (".png", "_curves.png", ".csv", ".md", "_runs.json", "_manifest.json")

#: Per-run training dynamics compared with GRPO's (the paper's Figures 2, 4 and 6): how much the gradient norm varies
#: over the run (standard deviation over logged steps), the mean response length over its last steps, and the share
#: of the trained model's evaluated answers that write a long step (world v2's long form).
LAST_STEPS = 10
#: The figure's y axis is linear within this many points of 0 and logarithmic beyond.
SYMLOG_LINEAR = 5.0
#: Each dynamic and the heading of its section in the markdown.
DYNAMICS = {"grad_norm sd": "Gradient norm: its standard deviation over the run's steps",
            "final length": f"Response length: mean over the last {LAST_STEPS} steps (tokens)",
            "long-form share": "Evaluated answers that write a long step (%, mean over the eval splits)"}


def run_dynamics(record: dict) -> dict[str, float]:
    """``grad_norm sd``: standard deviation of the logged gradient norm over the run's steps; ``final length``: mean
    of ``completions/mean_length`` over its last :data:`LAST_STEPS` logged steps; ``long-form share``: percent of the
    evaluated answers with a long step, averaged over the eval tasks (NaN where a run logged none of these)."""
    curves = record.get("curves") or []
    norms = [c["grad_norm"] for c in curves if c.get("grad_norm") is not None]
    lengths = [c["completions/mean_length"] for c in curves if c.get("completions/mean_length") is not None]
    long_form = list((record.get("long_form") or {}).values())
    return {"grad_norm sd": float(np.std(norms)) if norms else float("nan"),
            "final length": float(np.mean(lengths[-LAST_STEPS:])) if lengths else float("nan"),
            "long-form share": 100 * float(np.mean(long_form)) if long_form else float("nan")}


@dataclass(frozen=True)
class Cell:
    """One cell of the map: a teacher (a kind of divergence) on an RL split (a reward density)."""

    kind: str  # e.g. "style-only"
    teacher: str  # lab model name
    density: str  # e.g. "sparse (k5)"
    split: str  # RL split spec

    @property
    def name(self) -> str:
        return f"{self.kind}, {self.density}"


def cells(table: table_config.Table) -> list[Cell]:
    where = f"config {table.path}"
    teachers, splits = table.get("teachers"), table.get("splits")
    if not isinstance(teachers, dict) or not teachers or not isinstance(splits, dict) or not splits:
        raise table_config.UsageError(f"{where}: 'teachers' ({{kind: teacher}}) and 'splits' ({{density: RL split}}) "
                                      "are required")
    for split in splits.values():
        if split is not None:
            table_config.check_rl_split(split, where)
    # a config that inherits the map leaves a parent's density or kind out by setting it to null (mappings merge)
    return [Cell(kind, teacher, density, str(split)) for density, split in splits.items() if split is not None
            for kind, teacher in teachers.items() if teacher is not None]


def map_rows(table: table_config.Table) -> list[table_config.Row]:
    """The untrained student; per RL split the reference (GRPO, which reads no teacher); per cell every other row of
    the config with the cell's teacher and split."""
    reference = [row for row in table.rows if row.method == table_config.REFERENCE_METHOD]
    guided = [row for row in table.rows if row.trained and row.method != table_config.REFERENCE_METHOD]
    if len(reference) != 1 or not guided:
        raise table_config.UsageError(f"config {table.path}: rows must be {table_config.REFERENCE_METHOD} and the "
                                      "methods paired with it")
    out = [table_config.Row(key="base", method=table_config.BASE, label=table_config.BASE_LABEL)]
    for density, split in dict.fromkeys((cell.density, cell.split) for cell in cells(table)):
        out.append(replace(reference[0], key=f"{reference[0].key}@{split}", variant=density,
                           label=f"{reference[0].label} [{density}]", rl_split=split))
    for cell in cells(table):
        out += [replace(row, key=f"{row.key}@{cell.kind}@{cell.split}", variant=cell.name, teacher=cell.teacher,
                        rl_split=cell.split, label=f"{row.label} [{cell.name}]") for row in guided]
    return out


def main(argv: list[str] | None = None) -> int:
    session = start(NAME, __doc__, argv, SUFFIXES, profiles=table_config.LAB_PROFILES, rows=map_rows)
    if isinstance(session, int):
        return session
    table, stem, out_dir, args = session.table, session.stem, session.out_dir, session.args
    divergence = {cell: cell_divergence(args.profile, table, cell) for cell in cells(table)}  # before any run
    check_claims(table)  # likewise: a bad claim must not wait for the runs

    records = session.run("Regime map")

    frame = map_frame(records, table, divergence)
    plot(frame, table, out_dir / f"{stem}.png", n_seeds=len(session.plan.seeds))
    figures = [f"{stem}.png"]
    if table.get("curve_panels"):  # the runs' training curves, e.g. response length against step (Figures 2, 4, 6)
        plots.plot_curves(plots.curves_frame(records), table["curve_panels"],
                          f"{table['title']}: training curves, {plots.model_label(table.student)}",
                          out_dir / f"{stem}_curves.png", styles=plots.record_styles(records))
        figures.append(f"{stem}_curves.png")
    if session.redrawn(records, figures):
        return 0
    frame.round(3).to_csv(out_dir / f"{stem}.csv", index=False)
    text = render(frame, table, args, len(session.plan.seeds))
    (out_dir / f"{stem}.md").write_text(text)
    session.finish(records, figures)
    print(text)
    return 0


def cell_divergence(profile: str, table: table_config.Table, cell: Cell) -> dict[str, float]:
    """The cell's teacher's measured divergence on the cell's split (:func:`repro.regime.divergence`)."""
    return regime.divergence(profile, table.student, cell.teacher, cell.split)


def map_frame(records: list[dict], table: table_config.Table, divergence: dict[Cell, dict]) -> pd.DataFrame:
    """One row per (cell, method): the method's and GRPO's means, and method − GRPO as a paired t interval over seeds,
    for every average of the config and for the runs' dynamics (:func:`run_dynamics`); in the headline average also
    method − each ``paired_also`` method of the cell (``Δ <headline> vs <label>``) and the method in this cell − the
    same method in the ``baseline_kind`` cell of its split, in the headline and every dynamic (``Δ <column> vs
    <kind>``: what the divergence costs); then the cell's measured divergence."""
    wide = tables.wide_scores(records, table.columns, table.averages)
    dynamics = pd.DataFrame([{"row": r["label"], "seed": r["seed"], **run_dynamics(r)} for r in records
                             if r["method"] != table_config.BASE]).set_index(["row", "seed"])
    wide = wide.join(dynamics)
    headline = next(iter(table.averages))
    reference = next(row for row in table.rows if row.method == table_config.REFERENCE_METHOD)
    guided = {row.method: row for row in table.rows if row.trained and row.method != reference.method}
    also = [guided[m] for m in table.get("paired_also") or [] if m in guided]
    baseline = table.get("baseline_kind")
    out = []
    for cell in cells(table):
        grpo = wide.xs(f"{reference.label} [{cell.density}]", level="row")
        for row in guided.values():
            method = wide.xs(f"{row.label} [{cell.name}]", level="row")
            seeds = sorted(set(method.index) & set(grpo.index))
            entry = {"kind": cell.kind, "teacher": cell.teacher, "density": cell.density, "rl_split": cell.split,
                     "method": row.method, "label": row.label, "n_seeds": len(seeds)}
            for col in [*table.averages, *DYNAMICS]:
                entry.update(_paired(method, grpo, col, f"Δ {col}"), **{f"{col} mean": method.loc[seeds, col].mean(),
                                                                       f"GRPO {col} mean": grpo.loc[seeds, col].mean()})
            for other in also:
                if other.method != row.method:
                    entry.update(_paired(method, wide.xs(f"{other.label} [{cell.name}]", level="row"), headline,
                                         f"Δ {vs_column(headline, other.label)}"))
            if baseline and cell.kind != baseline:
                own = wide.xs(f"{row.label} [{baseline}, {cell.density}]", level="row")
                for col in (headline, *DYNAMICS):
                    entry.update(_paired(method, own, col, f"Δ {vs_column(col, baseline)}"))
            out.append({**entry, **divergence[cell]})
    return pd.DataFrame(out)


def _paired(a: pd.DataFrame, b: pd.DataFrame, column: str, name: str) -> dict[str, float]:
    """``{name: mean, name + " ci": half-width}`` of ``a − b`` in ``column``, paired by seed (the seeds both have)."""
    seeds = sorted(set(a.index) & set(b.index))
    diff = stats.paired_t_interval(a.loc[seeds, column].to_numpy(), b.loc[seeds, column].to_numpy())
    return {name: diff.mean, f"{name} ci": diff.half}


#: A claim's verdict in a cell from its paired interval (the rule of results/lab/README.md): ``more``/``less``: the
#: paper says the difference is above/below 0; ``no_more``/``no_less``: it says the difference is not above/below 0
#: (a gradient norm as stable as GRPO's; accuracy kept under a divergent teacher), which an interval can contradict
#: but not prove; ``within``: it says the difference is near 0 (one length tracks another), judged against the
#: claim's ``margin``: reproduced when the interval lies inside ±margin, not reproduced when it lies outside.
VERDICTS = {
    "more": lambda low, high, margin: "reproduced" if low > 0 else "not reproduced" if high < 0 else "inconclusive",
    "less": lambda low, high, margin: "reproduced" if high < 0 else "not reproduced" if low > 0 else "inconclusive",
    "no_more": lambda low, high, margin: "contradicted" if low > 0 else "not contradicted",
    "no_less": lambda low, high, margin: "contradicted" if high < 0 else "not contradicted",
    "within": lambda low, high, margin: ("reproduced" if -margin <= low and high <= margin
                                         else "not reproduced" if low > margin or high < -margin else "inconclusive"),
}


def paired_columns(table: table_config.Table) -> list[str]:
    """The columns :func:`map_frame` pairs (each as ``Δ <column>``): every average and dynamic against GRPO, the
    headline against each ``paired_also`` method's label and against ``baseline_kind``."""
    headline = next(iter(table.averages))
    labels = {row.method: row.label for row in table.rows}
    baseline = table.get("baseline_kind")
    return [*table.averages, *DYNAMICS, *(vs_column(headline, labels[m]) for m in table.get("paired_also") or []
                                          if m in labels and m != table_config.REFERENCE_METHOD),
            *([vs_column(col, baseline) for col in (headline, *DYNAMICS)] if baseline else [])]


def vs_column(headline: str, other: str) -> str:
    """The name of a headline difference against another method's row or another kind's cell (one format for the
    frame :func:`map_frame` writes and the claims :func:`check_claims` accepts)."""
    return f"{headline} vs {other}"


def check_claims(table: table_config.Table) -> None:
    """The config's ``baseline_kind`` and ``claims``, refused in one line before anything runs."""
    where = f"config {table.path}"
    baseline = table.get("baseline_kind")
    if baseline and baseline not in {c.kind for c in cells(table)}:
        raise table_config.UsageError(f"{where}: baseline_kind {baseline!r} is none of the kinds in 'teachers'")
    columns = paired_columns(table)
    methods = {row.method for row in table.rows if row.trained and row.method != table_config.REFERENCE_METHOD}
    for claim in table.get("claims") or []:
        if not isinstance(claim, dict) or {"claim", "method", "column", "direction"} - set(claim):
            raise table_config.UsageError(f"{where}: claim {claim!r}: expected {{claim, method, column, direction}}")
        if claim["direction"] not in VERDICTS or claim["column"] not in columns or claim["method"] not in methods:
            raise table_config.UsageError(
                f"{where}: claim {claim['claim']!r}: direction must be one of {sorted(VERDICTS)}, column one of "
                f"{columns} and method one of {sorted(methods)}")
        margin = claim.get("margin")
        if (claim["direction"] == "within") != (isinstance(margin, (int, float)) and margin > 0):
            raise table_config.UsageError(f"{where}: claim {claim['claim']!r}: a positive 'margin' goes with "
                                          "direction 'within' (and only with it)")


def claim_verdicts(frame: pd.DataFrame, table: table_config.Table) -> pd.DataFrame:
    """The config's ``claims`` (``{claim, method, column, direction}``: a column of :func:`map_frame` without its
    ``Δ ``, read in the method's row; ``margin`` with direction ``within``) judged in every cell: one row per claim,
    one column per cell, ``verdict (Δ ± half-width)``; a cell without that comparison (e.g. the in-family cell against
    itself) is ``—``."""
    check_claims(table)
    out = {}
    for claim in table.get("claims") or []:
        rows = frame[frame["method"] == claim["method"]]
        verdicts = {}
        for _, r in rows.iterrows():
            mean, half = r[f"Δ {claim['column']}"], r[f"Δ {claim['column']} ci"]
            verdicts[f"{r['kind']}, {r['density']}"] = "—" if pd.isna(mean) else (
                f"{VERDICTS[claim['direction']](mean - half, mean + half, claim.get('margin'))} "
                f"({tables.cell(mean, half, digits=_digits(claim['column']), signed=True)})")
        out[claim["claim"]] = verdicts
    return pd.DataFrame.from_dict(out, orient="index")


def _digits(column: str) -> int:
    """Decimals shown for a column: gradient-norm spreads are fractions of 1, the rest points, percent or tokens."""
    return 3 if column.startswith("grad_norm") else 1


def _grid(frame: pd.DataFrame, column: str, digits: int = 1) -> str:
    """Markdown: one row per method, one column per cell, ``Δ ± half-width`` of ``column``."""
    cells_of = frame["kind"] + ", " + frame["density"]
    values = ["—" if pd.isna(m) else tables.cell(m, h, digits=digits, signed=True)
              for m, h in zip(frame[f"Δ {column}"], frame[f"Δ {column} ci"])]
    shown = frame.assign(cell=cells_of, value=values).pivot(index="label", columns="cell", values="value")
    shown = shown[list(dict.fromkeys(cells_of))].loc[list(dict.fromkeys(frame["label"]))].rename_axis("")
    return shown.to_markdown(disable_numparse=True)


def _versus(column: str, table: table_config.Table) -> str:
    other = column.split(" vs ")[1]
    if other == table.get("baseline_kind"):
        return f"The method's run in this cell − its run with the {other} teacher on the same split"
    return f"The method − {other} in the same cell"


def render(frame: pd.DataFrame, table: table_config.Table, args, n_seeds: int) -> str:
    headline = next(iter(table.averages))
    cells_frame = frame.drop_duplicates(["kind", "density"])
    measured = pd.DataFrame({"cell": cells_frame["kind"] + ", " + cells_frame["density"],
                             "teacher": cells_frame["teacher"], "RL split": cells_frame["rl_split"],
                             f"GRPO {headline}": cells_frame[f"GRPO {headline} mean"].map(lambda v: f"{v:.1f}"),
                             "GRPO grad_norm sd": cells_frame["GRPO grad_norm sd mean"].map(lambda v: f"{v:.3f}"),
                             "GRPO final length": cells_frame["GRPO final length mean"].map(lambda v: f"{v:.1f}"),
                             **({"GRPO long-form share": cells_frame["GRPO long-form share mean"].map(lambda v: f"{v:.1f}")}
                                if cells_frame["GRPO long-form share mean"].notna().any() else {}),
                             **{k: cells_frame[k].map(lambda v: f"{v:.2f}") for k in regime.DIVERGENCE}})
    return (f"# {table['title']} ({args.profile} profile, preset {args.preset}, student {table.student}, {n_seeds} "
            f"seeds)\n\nEach entry: method − GRPO, a paired 95% t interval over seeds (same seed and RL data order on the "
            f"cell's split).\n\n## {headline} (percentage points)\n\n{_grid(frame, headline)}\n\n"
            + "".join(f"## {title}\n\n{_grid(frame, column, _digits(column))}\n\n" for column, title in DYNAMICS.items()
                      if frame[f"Δ {column}"].notna().any())
            + "".join(f"## {column.removeprefix('Δ ')}{' (percentage points)' if column.startswith(f'Δ {headline} ') else ''}"
                      f"\n\n{_versus(column, table)}, paired by seed.\n\n"
                      f"{_grid(frame, column.removeprefix('Δ '), _digits(column.removeprefix('Δ ')))}\n\n"
                      for column in frame.columns if " vs " in column and not column.endswith(" ci")
                      and frame[column].notna().any())
            + (f"## The paper's claims, cell by cell\n\nA verdict from each cell's paired 95% interval: reproduced when "
               "it excludes 0 in the paper's direction, not reproduced when it excludes 0 the other way, inconclusive "
               "when it contains 0 (for a claim that a method is *no worse*: contradicted or not; for a claim that a "
               "difference is near 0: reproduced when the interval lies within the claim's margin, not reproduced "
               "when it lies outside it, inconclusive otherwise).\n\n"
               f"{claim_verdicts(frame, table).rename_axis('claim').to_markdown(disable_numparse=True)}\n\n"
               if table.get("claims") else "")
            + f"## Cells\n\nThe teacher and RL split, GRPO's means, and the teacher's measured divergence on the student's "
            f"own rollouts (from results/{args.profile}/regime_<student>_<teacher>_<split>.csv).\n\n"
            f"{measured.to_markdown(index=False, disable_numparse=True)}\n\nMeasured by this repo.\n")


def plot(frame: pd.DataFrame, table: table_config.Table, out: Path, n_seeds: int) -> Path:
    """One panel per reward density: method − GRPO (headline, 95% interval) at each kind of divergence, one colour
    and marker per method (the registry's), a line at 0."""
    import matplotlib.pyplot as plt

    headline = next(iter(table.averages))
    densities = list(dict.fromkeys(frame["density"]))
    kinds = list(dict.fromkeys(frame["kind"]))
    methods = list(dict.fromkeys(frame["method"]))
    low = (frame[f"Δ {headline}"] - frame[f"Δ {headline} ci"]).min()
    high = (frame[f"Δ {headline}"] + frame[f"Δ {headline} ci"]).max()
    ticks = [t for t in (-40, -20, -10, -5, -2, 0, 2, 5, 10, 20, 40) if low - 1 <= t <= high + 1]
    with plt.rc_context(plots.FONT):
        fig, axes = plt.subplots(1, len(densities), figsize=plots.SLIDE, sharey=True, squeeze=False)
        for ax, density in zip(axes[0], densities):
            part = frame[frame["density"] == density]
            for i, method in enumerate(methods):
                rows = part[part["method"] == method].set_index("kind").loc[kinds]
                offset = (i - (len(methods) - 1) / 2) * 0.12
                style = plots.method_style(method)
                ax.errorbar([k + offset for k in range(len(kinds))], rows[f"Δ {headline}"], yerr=rows[f"Δ {headline} ci"],
                            color=style["color"], marker=style["marker"], linestyle="none", capsize=4,
                            label=rows["label"].iloc[0])
            ax.axhline(0, color="#555555", linewidth=1)
            # linear within ±SYMLOG_LINEAR points, where guided methods and GRPO differ; RKL's collapse (tens of
            # points) beyond it, compressed, so both show on one axis
            ax.set_yscale("symlog", linthresh=SYMLOG_LINEAR)
            ax.set_yticks(ticks, [f"{t:+g}" if t else "0" for t in ticks])
            ax.set_xticks(range(len(kinds)), [f"{k}\n({part[part['kind'] == k]['teacher'].iloc[0]})" for k in kinds])
            ax.set_title(f"RL split: {density}")
            ax.grid(axis="y", alpha=0.3)
        axes[0][0].set_ylabel(f"method − GRPO, {headline} (points; linear within ±{SYMLOG_LINEAR:g})")
        handles, labels = axes[0][0].get_legend_handles_labels()
        plots.legend(fig, handles, labels)
        # wrapped: a long config title and this subtitle overflow one line of the figure's width
        fig.suptitle(textwrap.fill(f"{table['title']}: guided methods against GRPO by kind of divergence and reward "
                                   "density", 110))
        return plots.save_figure(fig, out, caption=f"Paired 95% t intervals over {n_seeds} seeds. Measured by this "
                                                   "repo.", legend_below=True)


if __name__ == "__main__":
    sys.exit(options.cli(main))
