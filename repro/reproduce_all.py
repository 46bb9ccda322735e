"""Every table and figure of the lab (or smoke) profile, in an order that lets later scripts reuse the runs of
earlier ones: Tables 1–3, Figures 2, 4 (and 6), 5, the divergence sweep, and the presets audit.

    nox -s reproduce_all [-- --profile lab|smoke --preset P --seeds N --workers N --no-cache]
"""

from __future__ import annotations

import importlib
import sys
import time
from datetime import datetime, timezone

from repro import options, table_config

SCRIPTS = ["table1", "table2", "table3", "figure2", "figure4", "figure5", "sweep", "audit"]
#: The scripts that draw figures (``--redraw`` runs only these, each redrawing from the committed records).
FIGURE_SCRIPTS = ["table1", "table2", "figure2", "figure4", "figure5", "sweep"]


def main(argv: list[str] | None = None) -> int:
    args = options.parse_args("reproduce_all", __doc__, argv, profiles=table_config.LAB_PROFILES, config=False)
    passthrough = ["--profile", args.profile, "--preset", args.preset]
    for flag, value in (("--seeds", args.seeds), ("--output-dir", args.output_dir), ("--workers", args.workers)):
        if value is not None:
            passthrough += [flag, str(value)]
    if args.no_cache:  # rerun everything once, but let later scripts reuse the runs made by earlier ones
        passthrough += ["--cache-after", datetime.now(timezone.utc).isoformat(timespec="seconds")]
    if args.dry_run:
        passthrough.append("--dry-run")
    if args.redraw:
        passthrough.append("--redraw")
    started = time.time()
    for name in FIGURE_SCRIPTS if args.redraw else SCRIPTS:
        t0 = time.time()
        print(f"\n===== python -m repro.{name} {' '.join(passthrough)}", flush=True)
        rc = importlib.import_module(f"repro.{name}").main(passthrough)
        if rc:
            return rc
        print(f"===== {name}: {time.time() - t0:.0f} s", flush=True)
    print(f"\nreproduce_all ({args.profile}, {args.preset}): {time.time() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(options.cli(main))
