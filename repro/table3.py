"""Table 3: robustness to the teacher — RKL, KDRL and TGPO-Reg with the in-family and with the cross-family
teacher, side by side, and the change between them (cross − in) with its 95% interval.

    nox -s reproduce_table3 [-- --profile lab|smoke|paper --preset P --seeds N]

Outputs in ``results/<profile>/``: ``table3.csv``, ``table3.md``, ``table3_runs.json``, ``table3_manifest.json``
(``table3_<preset>_<N>seeds.*`` for a non-default preset or seed count).
"""

from __future__ import annotations

import sys

import pandas as pd

from repro import options, stats, table_config, tables
from repro.session import start

NAME = "table3"
SUFFIXES = (".csv", ".md", "_runs.json", "_manifest.json")


def main(argv: list[str] | None = None) -> int:
    session = start(NAME, __doc__, argv, SUFFIXES, figures=False)
    if isinstance(session, int):
        return session
    args, table, stem, out_dir = session.args, session.table, session.stem, session.out_dir

    records = session.run("Table 3")

    frame, text = side_by_side(records, table, args)
    frame.round(3).to_csv(out_dir / f"{stem}.csv", index=False)
    (out_dir / f"{stem}.md").write_text(text)
    session.finish(records)
    print(text)
    return 0


def side_by_side(records: list[dict], table: table_config.Table, args) -> tuple[pd.DataFrame, str]:
    """Per method: each column's mean ± 95% half-width with each teacher, and the change (last variant − first) as
    a paired t interval over seeds (same seed and data order with either teacher)."""
    summary = tables.summary_table(records, table.columns, table.averages, table.labels)
    wide = tables.wide_scores(records, table.columns, table.averages)
    labels = tables.column_labels(summary)
    methods = list(dict.fromkeys(row.method for row in table.rows))
    variants = list(dict.fromkeys(row.variant for row in table.rows))
    first, last = variants[0], variants[-1]
    label_of = {(row.method, row.variant): row.label for row in table.rows}
    csv_rows, cells = [], []
    for method in methods:
        name = label_of[(method, first)].removesuffix(f" ({first})")
        csv_row, cell = {"method": name}, {"method": name}
        for col in labels:
            for variant in variants:
                r = summary.loc[label_of[(method, variant)]]
                csv_row[f"{col} ({variant}) mean"] = r[f"{col} mean"]
                csv_row[f"{col} ({variant}) ci"] = r[f"{col} ci"]
                cell[f"{col} ({variant})"] = tables.cell(r[f"{col} mean"], r[f"{col} ci"])
        for col in labels:
            change = stats.paired_t_interval(wide.xs(label_of[(method, last)], level="row")[col].to_numpy(),
                                             wide.xs(label_of[(method, first)], level="row")[col].to_numpy())
            csv_row[f"Δ {col}"], csv_row[f"Δ {col} ci"] = change.mean, change.half
            cell[f"Δ {col}"] = tables.cell(change.mean, change.half, signed=True)
        csv_rows.append(csv_row)
        cells.append(cell)
    teachers = ", ".join(f"{row.variant} = `{row.teacher or row.config.name}`" for row in table.rows
                         if row.method == methods[0])
    md = pd.DataFrame(cells).set_index("method").rename_axis("").to_markdown(disable_numparse=True)
    text = (f"# {table['title']} ({table.profile} profile, preset {args.preset}, student {table.student})\n\n{md}\n\n"
            f"Teachers: {teachers}. Δ = {last} − {first} (percentage points), a paired t interval over seeds. Greedy "
            f"pass@1 in percent, mean ± half-width of the 95% t interval over {len(options.seeds_of(args, table))} "
            "seed(s). Measured by this repo.\n")
    return pd.DataFrame(csv_rows), text


if __name__ == "__main__":
    sys.exit(options.cli(main))
