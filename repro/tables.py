"""Tables from run records: mean ± std over seeds, column averages, and the paper's *reported* numbers.

Reported numbers are read from ``tgpo/resources/paper_reference.csv`` (a copy of ../shared's) and printed
in a separate, labelled section; a cell the source does not state stays empty.
"""

from __future__ import annotations

import pandas as pd

from tgpo.resources import PAPER_REFERENCE_CSV

METHOD_LABELS = {
    "base": "Base student",
    "grpo": "GRPO",
    "luffy": "LUFFY",
    "rkl": "RKL",
    "kdrl": "KDRL (k2)",
    "kdrl_reference": "KDRL (authors' variant)",
    "tgpo": "TGPO",
}


def row_label(cfg: dict, row: str) -> str:
    """A table row's display name: the config's ``labels`` entry, else the method's label."""
    return cfg.get("labels", {}).get(row) or METHOD_LABELS[row]


def scores_frame(records: list[dict], row_key: str = "method") -> pd.DataFrame:
    """Long frame ``row, seed, task, score`` (scores in percent) from lab-runner records."""
    rows = []
    for rec in records:
        label = rec.get("extra", {}).get("row") or rec[row_key]
        for task, score in rec["scores"].items():
            rows.append({"row": label, "seed": rec["seed"], "task": task, "score": 100.0 * score})
    return pd.DataFrame(rows)


def seed_table(
    long: pd.DataFrame, columns: dict[str, str], averages: dict[str, list[str]], row_order: list[str]
) -> pd.DataFrame:
    """Per row: mean and std over seeds of each column and of each average of columns.

    Args:
        long: from :func:`scores_frame`.
        columns: task name -> column label, in display order.
        averages: average label -> the column labels it averages (unweighted; per seed, then over seeds).
        row_order: row labels in display order.
    Returns: a frame indexed by row with ``<col> mean``, ``<col> std`` and ``n_seeds`` columns.
    """
    wide = long[long.task.isin(columns)].pivot_table(index=["row", "seed"], columns="task", values="score")
    wide = wide.rename(columns=columns)[list(columns.values())]
    for label, members in averages.items():
        wide[label] = wide[members].mean(axis=1)
    grouped = wide.groupby(level="row")
    out = pd.concat({"mean": grouped.mean(), "std": grouped.std(ddof=1).fillna(0.0)}, axis=1)
    out.columns = [f"{col} {stat}" for stat, col in out.columns]
    ordered = [f"{c} {s}" for c in wide.columns for s in ("mean", "std")]
    out = out[ordered]
    out["n_seeds"] = grouped.size()
    return out.reindex([r for r in row_order if r in out.index])


def to_markdown(table: pd.DataFrame, digits: int = 1) -> str:
    """``mean ± std`` cells (a single-seed row shows the mean alone)."""
    labels = [c.removesuffix(" mean") for c in table.columns if c.endswith(" mean")]
    lines = ["| | " + " | ".join(labels) + " | seeds |", "|---" * (len(labels) + 2) + "|"]
    for row, values in table.iterrows():
        cells = []
        for label in labels:
            mean, std = values[f"{label} mean"], values[f"{label} std"]
            cells.append(f"{mean:.{digits}f}" if values["n_seeds"] < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}")
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {int(values['n_seeds'])} |")
    return "\n".join(lines)


def reported_section(benchmarks: list[str], models: list[str] | None = None) -> str:
    """The paper's and related work's reported numbers for ``benchmarks``, as a labelled markdown table."""
    ref = pd.read_csv(PAPER_REFERENCE_CSV)
    ref = ref[ref.benchmark.isin(benchmarks)]
    if models:
        ref = ref[ref.model.isin(models)]
    if ref.empty:
        return "_No reported numbers for these benchmarks in paper_reference.csv._"
    wide = ref.pivot_table(index=["model", "method"], columns="benchmark", values="score", aggfunc="first")
    wide = wide[[b for b in benchmarks if b in wide.columns]]
    lines = ["| model | method | " + " | ".join(wide.columns) + " |", "|---" * (len(wide.columns) + 2) + "|"]
    for (model, method), values in wide.iterrows():
        cells = ["" if pd.isna(v) else f"{v:.1f}" for v in values]
        lines.append(f"| {model} | {method} | " + " | ".join(cells) + " |")
    sources = sorted(ref.source.dropna().unique())
    notes = sorted(n for n in ref.note.dropna().unique() if str(n).strip())
    foot = ["", "Reported, not measured by this repo. Sources: " + "; ".join(sources) + "."]
    if notes:
        foot.append("Notes: " + "; ".join(notes) + ".")
    foot.append("An empty cell means the source does not state that number.")
    return "\n".join(lines + foot)
