"""A Table-1-shaped script (rows: methods; columns: the table's splits or benchmarks): its table and curves."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from repro import tables
from repro.session import start
from repro.table_config import Table, reference_label, reported_for


def method_table_main(name: str, doc: str, argv: Sequence[str] | None = None) -> int:
    """A Table-1-shaped script (rows: methods; columns: the table's splits or benchmarks), with training curves."""
    from repro import plots

    session = start(name, doc, argv, METHOD_TABLE_SUFFIXES)
    if isinstance(session, int):
        return session
    records = session.run(session.table["title"])
    if not session.redraw:
        print(write_method_table(records, session.table, session.args, session.out_dir, session.stem))
    figures = []
    if session.plan.lab:
        table, curves = session.table, f"{session.stem}_curves.png"
        trained = [rec for rec in records if rec["method"] != "base"]
        plots.plot_curves(plots.curves_frame(trained), METHOD_TABLE_CURVES,
                          f"{table['title']}: training curves — {plots.setting(table.student, table.teacher)}, "
                          f"preset {session.args.preset}", session.out_dir / curves,
                          styles=plots.record_styles(trained))
        figures.append(curves)
    session.finish(records, figures)
    print(f"[{name}] wrote {', '.join(figures) if session.redraw else session.stem + '.*'} to {session.out_dir}")
    return 0


METHOD_TABLE_SUFFIXES = (".csv", ".md", "_runs.json", "_curves.png", "_manifest.json")
METHOD_TABLE_CURVES = ["reward", "completions/mean_length", "grad_norm", "entropy"]

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
