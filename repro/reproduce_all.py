"""Every table and figure of the lab (or smoke) profile, in an order that lets later scripts reuse the runs
of earlier ones: Tables 1–3, Figures 2, 4 (and 6), 5 and the divergence sweep.

    nox -s reproduce_all [-- --profile lab|smoke --seeds N]
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser  # noqa: E402

SCRIPTS = ["table1", "table2", "table3", "figure2", "figure4", "figure5", "sweep"]


def main(argv: list[str] | None = None) -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.profile == "paper":
        raise SystemExit("reproduce_all runs the lab and smoke profiles; for the paper profile run each table "
                         "script with --profile paper (see repro/launch/README.md)")
    passthrough = ["--profile", args.profile]
    for flag, value in (("--seeds", args.seeds), ("--output-dir", args.output_dir), ("--workers", args.workers)):
        if value is not None:
            passthrough += [flag, str(value)]
    if args.dry_run:
        passthrough.append("--dry-run")
    started = time.time()
    for name in SCRIPTS:
        t0 = time.time()
        print(f"\n===== repro/{name}.py {' '.join(passthrough)}", flush=True)
        rc = importlib.import_module(name).main(passthrough)
        if rc:
            return rc
        print(f"===== {name}: {time.time() - t0:.0f} s", flush=True)
    print(f"\nreproduce_all ({args.profile}): {time.time() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
