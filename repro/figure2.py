"""Figure 2: RKL dynamics with the in-family versus the cross-family teacher — training reward, gradient norm and
response length against step (Table 3's RKL runs).

    nox -s reproduce_figure2 [-- --profile lab|smoke --preset P --seeds N]
    python -m repro.figure2 --redraw [--seeds 6]     # redraw from the committed runs (figure2 or table3 records)

Outputs in ``results/<profile>/``: ``figure2.png``, ``figure2_runs.json``, ``figure2_manifest.json``.
"""

from __future__ import annotations

import sys

from repro import options, plots, table_config
from repro.session import start

NAME = "figure2"
SUFFIXES = (".png", "_runs.json", "_manifest.json")
PANELS = ["reward", "grad_norm", "completions/mean_length"]


def main(argv: list[str] | None = None) -> int:
    session = start(NAME, __doc__, argv, SUFFIXES, table="table3", profiles=table_config.LAB_PROFILES,
                    rows=lambda table: table.select(["rkl"]))  # Table 3's RKL runs
    if isinstance(session, int):
        return session
    stem, out_dir, table = session.stem, session.out_dir, session.table

    records = session.run("Figure 2")

    plots.plot_curves(plots.curves_frame(records), PANELS,
                      f"Figure 2 — RKL with the in-family vs the cross-family teacher, {plots.model_label(table.student)}",
                      out_dir / f"{stem}.png", styles=plots.record_styles(records))
    session.finish(records, [f"{stem}.png"])
    print(f"[{NAME}] wrote {out_dir / (stem + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(options.cli(main))
