"""Table 1: every method of the paper against the cross-family teacher, with 95% intervals and paired differences
from GRPO.

    nox -s reproduce_table1 [-- --profile lab|smoke|paper --preset P --seeds N]
    python -m repro.table1 --profile lab

``lab`` (default): tiny models on a CPU, trained with ``TGPOTrainer`` through the run-config path of ``tgpo train`` and
scored with ``tgpo eval`` on the lab's lm-eval tasks. ``smoke``: the same in seconds per row (CI). ``paper``: the
paper's Qwen runs from ``repro/configs/paper/`` through ``tgpo train`` and ``tgpo eval``; it needs GPUs and the Hugging
Face Hub and says so otherwise (``--dry-run`` prints its plan anywhere).

Outputs in ``results/<profile>/``: ``table1.csv``, ``table1.md``, ``table1_runs.json`` (every run's scores, per-problem
values and curves), ``table1_curves.png`` (lab) and ``table1_manifest.json``; with ``--preset`` other than the
profile's default or ``--seeds`` other than the config's, ``table1_<preset>_<N>seeds.*``. Earlier outputs are moved
to ``previous/``.
"""

from __future__ import annotations

import sys

from repro import method_table, options


def main(argv: list[str] | None = None) -> int:
    return method_table.method_table_main("table1", __doc__, argv)


if __name__ == "__main__":
    sys.exit(options.cli(main))
