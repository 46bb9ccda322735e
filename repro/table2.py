"""Table 2: Table 1's rows and columns for the smaller student (lab: ``student_small``; paper: Qwen2.5-Math-1.5B).

    nox -s reproduce_table2 [-- --profile lab|smoke|paper --seeds N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser  # noqa: E402
from table1 import run_lab_table  # noqa: E402

OUTPUTS = ["table2.csv", "table2.md", "table2_manifest.json"]


def main(argv: list[str] | None = None) -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.profile == "paper":
        from paper import run_paper_table

        return run_paper_table(args, "table2", OUTPUTS)
    return run_lab_table(args, args.profile, "table2", "Table 2 (smaller student)")


if __name__ == "__main__":
    sys.exit(main())
