"""Table 2: Table 1's rows and columns for the smaller student (lab: ``student_small``; paper: Qwen2.5-Math-1.5B),
with 95% intervals and paired differences from GRPO.

    nox -s reproduce_table2 [-- --profile lab|smoke|paper --preset P --seeds N]
    python -m repro.table2 --profile lab

Outputs in ``results/<profile>/``: ``table2.csv``, ``table2.md``, ``table2_runs.json``, ``table2_curves.png`` (lab) and
``table2_manifest.json`` (``table2_<preset>_<N>seeds.*`` for a non-default preset or seed count).
"""

from __future__ import annotations

import sys

from repro import method_table, options


def main(argv: list[str] | None = None) -> int:
    return method_table.method_table_main("table2", __doc__, argv)


if __name__ == "__main__":
    sys.exit(options.cli(main))
