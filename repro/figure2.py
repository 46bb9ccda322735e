"""Figure 2: RKL dynamics with the in-family versus the cross-family teacher — training reward, gradient norm and
response length against step (Table 3's RKL runs).

    nox -s reproduce_figure2 [-- --profile lab|smoke --preset P --seeds N]

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
    stem, out_dir = session.stem, session.out_dir

    records = session.run("Figure 2")

    plots.plot_curves(plots.curves_frame(records), PANELS, "Figure 2 — RKL: in-family vs cross-family teacher",
                      out_dir / f"{stem}.png")
    session.finish(records)
    print(f"[{NAME}] wrote {out_dir / (stem + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(options.cli(main))
