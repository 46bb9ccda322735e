"""Mutation testing of the loss code (``nox -s mutants``): how many of mutmut's mutants the fast tests kill.

Targets: every function of ``tgpo/objectives.py`` (the registry and its helpers) and the trainer's methods that build
the loss inputs (:data:`TARGETS`); tests: those of ``[tool.mutmut]`` in pyproject.toml (mutmut runs, per mutant, only
the tests that call the mutated function). Writes ``results/bench/mutants.md``: the number of mutants, the killed
share per function, the wall time, and every survivor with its diff and the reason it survives (:data:`REASONS`, an
equivalent mutant and the argument why). Exit code 1 when fewer than :data:`GOAL` of the mutants are killed or a
survivor has no stated reason (a new survivor needs a test, or an argument here).

Usage: ``python -m bench.mutants`` (a fresh run of both parts: mutmut's ``mutants/`` folder is removed first), or
``--part objectives`` / ``--part trainer`` (rerun one part, keep the other's last results), ``--survivors`` (rerun
only the mutants not killed last time, e.g. after adding a test), ``--report-only``. A new test in a file the
selection already names is picked up by ``--survivors``; a change to the selection itself (``[tool.mutmut]``) makes
mutmut drop every cached result, so run the whole session again after it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from tgpo.cli import OneLineParser

ROOT = Path(__file__).resolve().parent.parent
PROG = "python -m bench.mutants"
OUT = ROOT / "results" / "bench" / "mutants.md"
#: Wall time of each part's last mutmut run (seconds), next to mutmut's own results.
WALL = ROOT / "mutants" / "wall_times.json"
#: Share of mutants the tests must kill.
GOAL = 0.95
#: The trainer's methods that turn TRL's batch into the loss inputs: advantages (rewards, group advantages, LUFFY's
#: trace rows), the aggregation (token counts, accumulation, world size), the guided log-probs (the teacher's argmax
#: through the chunked head, the rollout policy's lp_g), importance weights, the guidance schedule. Left out to keep
#: the session's time: ``_target_logps`` (TRL's chunked kernel at the student's temperature; the trainer's tests
#: compare its output with full logits); mutmut itself skips decorated methods (``_rollout_guided_logps``).
TRAINER_METHODS = ["_aggregation", "_loss_inputs", "_generate_and_score_completions", "guidance_weight_at",
                   "_calculate_rewards", "_is_trace_row", "_teacher_active"]
#: mutmut's names of the mutants to run (``fnmatch`` patterns), in two parts that can run separately.
PARTS = {
    "objectives": ["tgpo.objectives.*"],
    "trainer": [f"tgpo.trainer.xǁTGPOTrainerǁ{m}__mutmut_*" for m in TRAINER_METHODS],
}
TARGETS = [t for targets in PARTS.values() for t in targets]
#: Surviving mutants that are equivalent to the original (no test can kill them), each with the argument why.
_UNUSED_DEFAULT = ("Equivalent: a default argument no caller in the library uses (the registry passes the value from "
                   "LossConfig every time), so no loss on the trained path can change.")
_TIE = ("Not killed: differs only where the ratio equals 1 + eps_high (or 1 - eps) exactly; there both branches of "
        "the surrogate are equal and neither is 'the clipped branch'. exp of a float log-ratio does not hit the tie "
        "in any test, and no behaviour depends on how the diagnostic counts it.")
_ONE_DEVICE = ("Not killable on a CPU: the tensor is created on the default device instead of the batch's; they are "
               "the same device in every CPU run (CI's), and only a GPU run would put it elsewhere.")
REASONS: dict[str, str] = {
    **dict.fromkeys([f"tgpo.trainer.xǁTGPOTrainerǁ_generate_and_score_completions__mutmut_{n}"
                     for n in (6, 29, 56, 58, 66, 68)], _ONE_DEVICE),
    "tgpo.objectives.x_surrogate__mutmut_1": _UNUSED_DEFAULT,
    "tgpo.objectives.x_kl_estimate__mutmut_1": _UNUSED_DEFAULT,
    "tgpo.objectives.x_kl_estimate__mutmut_2": _UNUSED_DEFAULT,
    "tgpo.objectives.x_entropy_bonus__mutmut_1": _UNUSED_DEFAULT,
    **dict.fromkeys(["tgpo.objectives.x_clip_ratios__mutmut_10", "tgpo.objectives.x_clip_ratios__mutmut_13"], (
        "Equivalent: the clipped mask comes from surrogate, which marks a token only where A > 0 or A < 0, so a "
        "clipped token never has A == 0 and A <= 0 (A >= 0) selects the same tokens as A < 0 (A > 0).")),
    "tgpo.objectives.x_clip_ratios__mutmut_16": (
        "Equivalent for the masks the trainer passes (TRL's integer completion_mask, or bool): a float share times an "
        "integer mask, over an integer count, is the same float32 value as over the mask cast to float32."),
    "tgpo.objectives.x_surrogate__mutmut_64": _TIE,
    "tgpo.objectives.x_surrogate__mutmut_70": _TIE,
    **dict.fromkeys(["tgpo.objectives.x_aggregate__mutmut_44", "tgpo.objectives.x_aggregate__mutmut_49",
                     "tgpo.objectives.x_clip_ratios__mutmut_22", "tgpo.objectives.x_clip_ratios__mutmut_25"],
                    "Equivalent: per-token losses, clip flags and masks are [B, T], so dimension +1 is dimension -1."),
    "tgpo.objectives.x_mean_tok__mutmut_12": (
        "Equivalent: the denominator is a token count (or the batch's token count), exact in float32 below 2**24, and "
        "the division promotes it to the numerator's dtype; the value is the same."),
    "tgpo.objectives.x_group_advantages__mutmut_47": "Equivalent: torch's std is unbiased by default.",
    **dict.fromkeys([f"tgpo.objectives.x_canonical_method__mutmut_{n}" for n in (10, 11)], (
        "Not killable under mutmut: the warning's stacklevel points at the caller, but mutmut's trampoline adds a "
        "frame in mutants/, so no test there can check which frame the warning names.")),
    "tgpo.objectives.x__as_bool__mutmut_2": "Equivalent: .bool() of a bool tensor is the same tensor's values.",
    **dict.fromkeys([f"tgpo.objectives.x_mean_tok__mutmut_{n}" for n in (13, 16)], (
        "Equivalent: without a device, a Python count becomes a 0-dim CPU tensor, which torch divides a tensor on any "
        "device by; a tensor count keeps its own device.")),
    "tgpo.objectives.x_mean_tok__mutmut_15": (
        "Equivalent: the denominator is a token count, exact in float32 below 2**24, and the division promotes it to "
        "the numerator's dtype."),
}
#: Survivors of the last committed run that a test added afterwards kills (each checked by running that test with
#: the mutant switched on, ``MUTANT_UNDER_TEST=<name> pytest <test>`` in mutants/); the next run records them killed.
KILLED_BY_NEW_TESTS: dict[str, str] = {}
KILLED = {"killed", "timeout", "caught by type check"}


def function_of(mutant: str) -> str:
    """``tgpo.trainer.xǁTGPOTrainerǁ_aggregation__mutmut_3`` -> ``trainer: TGPOTrainer._aggregation``."""
    module, _, rest = mutant.partition(".x")
    name = rest.rsplit("__mutmut_", 1)[0]
    name = ".".join(p for p in name.split("ǁ") if p) if "ǁ" in name else name[1:]  # mutmut's prefix is "x_" + name
    return f"{module.split('.')[-1]}: {name}"


def statuses() -> dict[str, str]:
    """Every targeted mutant's status from mutmut's result files (``mutants/**/*.meta``)."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for meta in sorted((ROOT / "mutants").rglob("*.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if any(fnmatch.fnmatchcase(name, t) for t in TARGETS):
                out[name] = status_by_exit_code[code]
    return out


def diff_of(mutant: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=ROOT, capture_output=True, text=True)
    lines = proc.stdout.splitlines()[1:]  # the first line repeats the name and status
    return "\n".join(line for line in lines if re.match(r"^[-+@ ]", line) and not line.startswith(("---", "+++")))


def provenance(parts: list[str]) -> str:
    """The commands of the recorded runs, when the last one finished (UTC) and the commit mutmut generated from."""
    commands = {"all": "python -m bench.mutants", "survivors rerun": "python -m bench.mutants --survivors"}
    runs = "; then ".join(f"`{commands.get(p, f'python -m bench.mutants --part {p}')}`" for p in parts) or "none"
    stats = ROOT / "mutants" / "mutmut-stats.json"
    sha = json.loads(stats.read_text()).get("git_commit") if stats.exists() else None
    when = (datetime.fromtimestamp(WALL.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            if WALL.exists() else "unknown")
    return f"- runs: {runs}; the last finished {when}; mutants of commit `{(sha or 'unknown')[:12]}` (mutmut's record)"


def report(status: dict[str, str], times: dict[str, float]) -> tuple[str, bool]:
    walls = {p: t for p, t in times.items() if not p.endswith(" load")}
    parts = [f"{p}: {t:.0f} s, load average {times.get(p + ' load', 0):.1f} at its start" for p, t in walls.items()]
    unchecked = sum(1 for s in status.values() if s == "not checked")
    status = {n: s for n, s in status.items() if s != "not checked"}
    counts = Counter(status.values())
    killed = sum(counts[s] for s in KILLED)
    total = len(status)
    share = killed / total if total else 0.0
    survivors = sorted(n for n, s in status.items() if s not in KILLED)
    unexplained = [n for n in survivors if n not in REASONS and n not in KILLED_BY_NEW_TESTS]
    per_function: dict[str, Counter] = {}
    for name, s in status.items():
        per_function.setdefault(function_of(name), Counter())[s in KILLED] += 1
    lines = [
        "# Mutation testing of the loss code",
        "",
        "Generated by `nox -s mutants` (`python -m bench.mutants`; targets and reasons in `bench/mutants.py`, tests in",
        "`[tool.mutmut]` of `pyproject.toml`). Do not edit by hand.",
        "",
        f"- mutmut {version('mutmut')}, one process (`--max-children 1`), wall time **{sum(walls.values()):.0f} s** "
        f"({'; '.join(parts)}; other work on the machine lengthens it)",
        provenance(list(walls)),
        f"- **{total} mutants, {killed} killed ({100 * share:.1f}%)**, goal {100 * GOAL:.0f}%; "
        f"{len(survivors)} not killed ({', '.join(f'{s}: {c}' for s, c in sorted(counts.items()) if s not in KILLED) or 'none'})",
        f"- survivors without a stated reason: {len(unexplained)}",
        f"- targeted mutants not checked (their part did not run to the end): {unchecked}",
        "",
        "| function | mutants | killed | killed % |",
        "|---|---:|---:|---:|",
    ]
    for fn, c in sorted(per_function.items()):
        n = c[True] + c[False]
        lines.append(f"| `{fn}` | {n} | {c[True]} | {100 * c[True] / n:.0f}% |")
    lines += ["", "## Survivors", ""]
    if not survivors:
        lines.append("None.")
    for name in survivors:
        reason = REASONS.get(name) or (f"Killed by `{KILLED_BY_NEW_TESTS[name]}`, added after this run (checked with "
                                       "the mutant switched on)." if name in KILLED_BY_NEW_TESTS else None)
        lines += [f"### `{name}` ({status[name]})", "", "```diff", diff_of(name), "```", "",
                  reason or "**No stated reason: needs a test that kills it, or the argument why it is equivalent.**",
                  ""]
    ok = total > 0 and share >= GOAL and not unexplained and not unchecked
    return "\n".join(lines).rstrip() + "\n", ok


def run_part(part: str, names: list[str]) -> int:
    """mutmut over ``names`` (every matching mutant is rerun); the wall time is kept in mutants/ under ``part``."""
    start, load = time.monotonic(), os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", "1", *names], cwd=ROOT,
                          stdout=subprocess.DEVNULL)
    times = json.loads(WALL.read_text()) if WALL.exists() else {}
    WALL.write_text(json.dumps({**times, part: time.monotonic() - start, f"{part} load": load}))
    return proc.returncode


def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()  # each names a different run; combined, all but one were ignored
    which.add_argument("--part", choices=list(PARTS), action="append",
                       help="run only this part, keeping the other's last results (default: a fresh run of all)")
    which.add_argument("--survivors", action="store_true",
                       help="rerun only the mutants the last results did not kill (after adding tests)")
    which.add_argument("--report-only", action="store_true", help="rewrite the report from mutmut's last results")
    args = parser.parse_args(argv)
    if (args.survivors or args.report_only) and not any((ROOT / "mutants").rglob("*.meta")):
        # without results the report would say 0 mutants and overwrite the last real one
        parser.error(f"{'--survivors' if args.survivors else '--report-only'}: no mutmut results in "
                     f"{ROOT / 'mutants'}: run python -m bench.mutants first")
    if args.survivors:
        jobs = {"survivors rerun": [n for n, s in statuses().items() if s not in KILLED]}
    elif args.report_only:
        jobs = {}
    else:
        if not args.part:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        # one mutmut run for a fresh measurement (it generates mutants and maps tests to functions once)
        jobs = {part: PARTS[part] for part in args.part} if args.part else {"all": TARGETS}
    for part, names in jobs.items():
        if names and run_part(part, names) not in (0, 1):
            print(f"{PROG}: error: mutmut run failed on {part}", file=sys.stderr)
            return 2
    status = statuses()
    times = json.loads(WALL.read_text()) if WALL.exists() else {}
    text, ok = report(status, times)
    OUT.write_text(text)
    print("\n".join(text.splitlines()[5:10]))
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
