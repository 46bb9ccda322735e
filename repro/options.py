"""The command line every reproduction script shares: its options, output names, and :func:`cli`, which turns bad
input into one line on stderr and exit code 2, before anything is archived or trained."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from repro import lab_runner, run_lock
from repro.paths import RESULTS
from repro.table_config import DEFAULT_PRESET, PROFILES, Table, UsageError
from tgpo.cli import output_folder, positive_int

#: The most seeds a script takes: each seed trains every row once (100 seeds of Table 1 are days on 2 cores); a larger
#: number is a typo, refused before a plan of that size is built.
MAX_SEEDS = 100


def seed_count(text: str) -> int:
    """An ``argparse`` type: a number of seeds, 1..:data:`MAX_SEEDS`."""
    value = positive_int(text)
    if value > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_SEEDS} seeds (each seed trains every row once), "
                                         f"got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block (exit code 2 either way)
        raise UsageError(message)


def parse_args(script: str, doc: str, argv: Sequence[str] | None = None,
               profiles: Sequence[str] = PROFILES, figures: bool = True, config: bool = True) -> argparse.Namespace:
    """The options every script takes. ``--preset`` defaults to the profile's. A script that draws no figures
    (``figures=False``) refuses ``--redraw`` rather than train; one that reads several configs (``config=False``)
    takes no ``--config``."""
    from tgpo.run_config import presets

    parser = _Parser(prog=f"python -m repro.{script}", description=doc.strip().splitlines()[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--profile", choices=profiles, default="lab",
                        help="lab: tiny models on a CPU (minutes); smoke: a few steps, one seed (CI); "
                             "paper: the paper's Qwen models on GPUs")
    parser.add_argument("--preset", choices=[p for p in presets() if not p.startswith("_")],
                        help="settings preset of every trained row (default: controlled for lab/smoke, authors_final "
                             "for paper); another than the default writes <name>_<preset>.*")
    if config:
        parser.add_argument("--config", help=f"another table config of repro/configs/<profile>/ than {script}.yaml "
                                             "(its name, e.g. table1_k4); the outputs are named after it")
    parser.add_argument("--seeds", type=seed_count,
                        help="number of seeds, 0..N-1 (default: the config's; another N writes <name>_<N>seeds.*)")
    parser.add_argument("--output-dir", type=output_folder, help="default: results/<profile>/")
    parser.add_argument("--workers", type=positive_int, help="parallel lab runs (default: CPU cores)")
    parser.add_argument("--no-cache", action="store_true",
                        help="run every lab run again, even when an identical one (same code, models, config, seed) "
                             "is cached")
    parser.add_argument("--cache-after", help=argparse.SUPPRESS)  # reproduce_all --no-cache: share this invocation's runs
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit without training")
    parser.add_argument("--redraw", action="store_true",
                        help="draw this script's figures from the committed run records (<name>_runs.json, or the "
                             "plotted table's runs of these seeds) without training; writes only figures and notes "
                             "the redraw in the manifest")
    args = parser.parse_args(argv)
    if args.redraw and not figures:
        raise UsageError(f"--redraw: repro.{script} draws no figures (redraw a figure script's, e.g. "
                         "python -m repro.figure4 --redraw)")
    args.preset = args.preset or DEFAULT_PRESET[args.profile]
    return args


def cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's ``main``; bad input becomes one line on stderr and exit code 2, a failed lab run exit code 1."""
    from tgpo.run_config import ConfigError

    name = Path(sys.modules[main.__module__].__file__).stem  # "table1", also when run as __main__
    try:
        return main(argv)
    except (UsageError, ConfigError, FileNotFoundError, run_lock.RunLocked) as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    except lab_runner.LabJobError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 1
    finally:
        run_lock.release_all()  # the script's locks (repro.run_lock), also when it ran inside another process


def config_name(args: argparse.Namespace, script: str) -> str:
    """The table config a script reads, and the name its outputs start with: ``--config`` where given, else the
    script's own."""
    return getattr(args, "config", None) or script


def seeds_of(args: argparse.Namespace, table: Table) -> list[int]:
    return list(range(args.seeds or table.seeds))


def output_stem(name: str, args: argparse.Namespace, table: Table) -> str:
    """``name``, plus ``_<preset>`` for a preset other than the profile's default and ``_<N>seeds`` for a seed count
    other than the config's, so such runs never overwrite the default outputs."""
    parts = [name]
    if args.preset != DEFAULT_PRESET[args.profile]:
        parts.append(args.preset)
    if args.seeds and args.seeds != table.seeds:
        parts.append(f"{args.seeds}seeds")
    return "_".join(parts)


def output_dir(args: argparse.Namespace) -> Path:
    return Path(args.output_dir or RESULTS / args.profile)
