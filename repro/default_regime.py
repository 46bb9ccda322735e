"""Pre-registration of Table 1's default regime: for each candidate RL split, in the config's order, train GRPO and
RKL (with the in-family and the cross-family teacher) over seeds, read the split's regime statistics, and check the
config's criteria; the first candidate that meets every one is the default. No TGPO row runs here, so the choice
cannot be tuned on TGPO's result.

    python -m repro.default_regime [--seeds N --workers N --no-cache]
    python -m repro.default_regime --redraw          # rewrite the tables from the committed runs, nothing trains

Criteria and candidates: ``repro/configs/lab/default_regime.yaml``. The regime statistics come from the committed
``results/lab/regime_<student>_<teacher>_<split>.csv`` (``python -m repro.regime``). Outputs in ``results/lab/``:
``default_regime.md`` (the criteria and each row's scores), ``default_regime.csv`` (the criteria),
``default_regime_scores.csv`` (each row's mean score and 95% half-width per column), ``default_regime_runs.json``,
``default_regime_manifest.json``. ``--redraw`` rewrites the markdown and both CSVs from the committed runs (they are
drawn from the runs and the regime files alone) and notes them in the manifest.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

import pandas as pd

from repro import options, planning, redraw, regime, stats, table_config, tables
from repro.manifest import Manifest, save_runs
from repro.session import archive

NAME = "default_regime"
SUFFIXES = (".csv", "_scores.csv", ".md", "_runs.json", "_manifest.json")
#: The rows every candidate trains (their `variant` in the config): GRPO, and RKL with each teacher.
IN_FAMILY, CROSS_FAMILY = "in-family", "cross-family"


@dataclass(frozen=True)
class Criterion:
    """One pre-registered criterion: a measured value (mean and 95% interval) against its minimum."""

    name: str
    minimum: float
    mean: float
    low: float
    high: float
    source: str

    @property
    def met(self) -> bool:  # the point estimate decides, as the config says; the interval is shown beside it
        return self.mean >= self.minimum


def main(argv: list[str] | None = None) -> int:
    args = options.parse_args(NAME, __doc__, argv, profiles=table_config.LAB_PROFILES)
    table = table_config.load_table(args.profile, options.config_name(args, NAME))
    stem = options.output_stem(options.config_name(args, NAME), args, table)
    candidates, criteria = _candidates(table), table.get("criteria") or {}
    teacher = next(row.teacher for row in table.rows if row.variant == CROSS_FAMILY)
    regimes = {split: regime_criteria(regime.committed(args.profile, table.student, teacher, split))
               for split in candidates}  # read (and a bad file refused) before anything trains
    _check_criteria(table, criteria)
    plans = {split: planning.plan_runs(table, args, rows=candidate_rows(table, split)) for split in candidates}
    if args.dry_run:
        return max(planning.print_plan(plan) for plan in plans.values())
    if args.redraw:  # nothing trains; the tables are rewritten (git keeps the earlier ones)
        out_dir, sources = options.output_dir(args), []
    else:
        for plan in plans.values():
            planning.check_ready(plan)
        out_dir = archive(options.output_dir(args), [stem + s for s in SUFFIXES])
    manifest = Manifest(NAME, args, table, plans[candidates[0]].seeds, extra={"candidates": candidates,
                                                                              "criteria": criteria})
    records, checked, scored, chosen, untrained = [], {}, {}, None, []
    for split in candidates:  # in order; stop at the first that meets every criterion
        from_file = judged(regimes[split], criteria)
        if not all(c.met for c in from_file):  # missed before any run: nothing to train
            checked[split], untrained = from_file, untrained + [split]
            continue
        if args.redraw:
            source, runs = redraw.committed_records(plans[split], args, out_dir, stem)
            sources.append(source)
        else:
            runs = planning.run_plan(plans[split], args, desc=f"Default regime {split} ({args.profile}, {args.preset})")
        records += [r for r in runs if r["method"] != table_config.BASE or not records]  # one base: split-free
        checked[split], scored[split] = check(runs, table, split, regimes[split], criteria), scores(runs, table, split)
        if all(c.met for c in checked[split]):
            chosen = split
            break
    manifest.extra.update(chosen=chosen, not_trained=untrained)
    frame = pd.DataFrame([{"rl_split": split, "criterion": c.name, "minimum": c.minimum, "mean": c.mean,
                           "low": c.low, "high": c.high, "met": c.met, "source": c.source}
                          for split, found in checked.items() for c in found])
    frame.round(3).to_csv(out_dir / f"{stem}.csv", index=False)
    scores_frame = pd.concat([s.rename_axis("row").reset_index().assign(rl_split=split)
                              for split, s in scored.items()]) if scored else pd.DataFrame()
    scores_frame.round(3).to_csv(out_dir / f"{stem}_scores.csv", index=False)
    text = render(checked, chosen, candidates, table, args, untrained, scored)
    (out_dir / f"{stem}.md").write_text(text)
    if args.redraw:
        redraw.note(manifest, out_dir, stem, records, sources[0] if sources else out_dir / f"{stem}_runs.json",
                    [f"{stem}.md", f"{stem}.csv", f"{stem}_scores.csv"])
    else:
        save_runs(records, out_dir, stem)
        manifest.write(out_dir, stem, records)
    print(text)
    return 0


def _candidates(table: table_config.Table) -> list[str]:
    where = f"config {table.path}"
    candidates = table.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise table_config.UsageError(f"{where}: 'candidates' (RL splits in order, e.g. [k5, k6]) is required")
    for split in candidates:
        table_config.check_rl_split(split, where)
    variants = {row.variant for row in table.rows if row.method == "rkl"}
    if not any(row.method == "grpo" for row in table.rows) or variants != {IN_FAMILY, CROSS_FAMILY}:
        raise table_config.UsageError(f"{where}: rows must be base, grpo and rkl with variants {IN_FAMILY} and "
                                      f"{CROSS_FAMILY}")
    return [str(split) for split in candidates]


def candidate_rows(table: table_config.Table, split: str) -> list[table_config.Row]:
    """The config's rows on RL split ``split`` (the untrained student does not depend on it)."""
    return [row if not row.trained else replace(row, key=f"{row.key}@{split}", label=f"{row.label} [{split}]",
                                                rl_split=split) for row in table.rows]


#: The criteria a config may name: those read from the regime file (:func:`regime_criteria`), then those measured on
#: the runs (:func:`check`).
CRITERIA = ("all_wrong_groups", "teacher_first_error", "grpo_gain", "grpo_hard_gain", "grpo_headroom", "rkl_drop")


def _check_criteria(table: table_config.Table, criteria: dict) -> None:
    where = f"config {table.path}"
    unknown = set(criteria) - set(CRITERIA)
    if unknown:
        raise table_config.UsageError(f"{where}: unknown criteria {sorted(unknown)}; expected some of {list(CRITERIA)}")
    if table.get("criteria_hard_column") not in table.columns.values():
        raise table_config.UsageError(f"{where}: criteria_hard_column {table.get('criteria_hard_column')!r}; expected "
                                      f"one of the columns {list(table.columns.values())}")


def regime_criteria(regime_stats: pd.DataFrame) -> dict[str, tuple[tuple[float, float, float], str]]:
    """The criteria read from a split's regime file: ``{name: ((mean, low, high), description)}``."""
    return {"all_wrong_groups": (regime.statistic(regime_stats, "GRPO groups", "all-wrong groups (%), steps 1-25"),
                                 "all-wrong groups under GRPO, steps 1-25 (%) [regime file]"),
            "teacher_first_error": (regime.statistic(regime_stats, "first error", "teacher argmax correct (%)"),
                                    "teacher's argmax correct at the first error of a wrong rollout (%) [regime file]")}


def judged(measured: dict, criteria: dict) -> list[Criterion]:
    """The config's criteria that ``measured`` (``{name: ((mean, low, high), description)}``) holds, against their
    minimums: before any run those of the regime file (:func:`regime_criteria`), after the runs all (:func:`check`)."""
    return [Criterion(name, float(criteria[name]), *measured[name][0], source=measured[name][1])
            for name in criteria if name in measured]


def check(records: list[dict], table: table_config.Table, split: str, from_regime: dict,
          criteria: dict) -> list[Criterion]:
    """Every criterion of the config, measured for one candidate (see the config for their meaning)."""
    headline = next(iter(table.averages))
    hard = table["criteria_hard_column"]
    wide = tables.wide_scores(records, table.columns, table.averages)
    label = {(row.method, row.variant): row.label for row in candidate_rows(table, split)}
    base = wide.xs(label[(table_config.BASE, None)], level="row")
    grpo = wide.xs(label[("grpo", None)], level="row")
    rkl_in = wide.xs(label[("rkl", IN_FAMILY)], level="row")[headline].to_numpy()
    rkl_cross = wide.xs(label[("rkl", CROSS_FAMILY)], level="row")[headline].to_numpy()
    measured = {
        **from_regime,
        "grpo_gain": (_interval(stats.t_interval(grpo[headline].to_numpy() - base[headline].iloc[0])),
                      f"GRPO − base student, {headline} (points)"),
        "grpo_hard_gain": (_interval(stats.t_interval(grpo[hard].to_numpy() - base[hard].iloc[0])),
                           f"GRPO − base student, {hard} (points)"),
        "grpo_headroom": (_interval(stats.t_interval(100.0 - grpo[headline].to_numpy())),
                          f"100 − GRPO, {headline} (points of headroom)"),
        "rkl_drop": (_interval(stats.paired_t_interval(rkl_in, rkl_cross)),
                     f"RKL in-family − RKL cross-family, {headline} (points)"),
    }
    return judged(measured, criteria)


def scores(runs: list[dict], table: table_config.Table, split: str) -> pd.DataFrame:
    """Each row's scores on one candidate (:func:`repro.tables.summary_table`: per column and average, the mean and
    the half-width of its 95% interval, over seeds; the base student's one run over problems), in the config's order."""
    labels = [row.label for row in candidate_rows(table, split)]
    return tables.summary_table([r for r in runs if r["label"] in labels], table.columns, table.averages, labels)


def _interval(interval: stats.Interval) -> tuple[float, float, float]:
    return interval.mean, interval.low, interval.high


def render(checked: dict[str, list[Criterion]], chosen: str | None, candidates: list[str], table, args,
           untrained: tuple[str, ...] | list[str] = (), scored: dict[str, pd.DataFrame] | None = None) -> str:
    lines = [f"# {table['title']} ({args.profile} profile, preset {args.preset}, student {table.student}, "
             f"{len(options.seeds_of(args, table))} seeds)", ""]
    for split in candidates:
        if split not in checked:
            lines += [f"## RL split {split}: not run (an earlier candidate met every criterion)", ""]
            continue
        verdict = ("meets every criterion: **chosen**" if split == chosen else
                   "misses a criterion of its regime file: not trained" if split in untrained else "misses a criterion")
        shown = pd.DataFrame([{"criterion": c.source, "minimum": f"{c.minimum:g}",
                               "measured [95% interval]": f"{c.mean:.1f} [{c.low:.1f}, {c.high:.1f}]",
                               "met": "yes" if c.met else "no"} for c in checked[split]])
        lines += [f"## RL split {split}: {verdict}", "", shown.to_markdown(index=False, disable_numparse=True), ""]
        if scored and split in scored:
            lines += ["Scores (%, mean ± 95% half-width over seeds; the base student's one run: over problems):", "",
                      tables.scores_markdown(scored[split]), ""]
    lines.append(f"Chosen: **{chosen}**." if chosen else "No candidate meets every criterion: the default stays.")
    lines.append("\nA criterion is met when its mean reaches the minimum (decided before the runs; the interval is "
                 "shown beside it). Scores: greedy pass@1 (%) on 600 problems per split; t intervals over seeds "
                 "(RKL's drop paired by seed). Only GRPO and RKL ran: no TGPO result entered the choice. Measured by "
                 "this repo.\n")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(options.cli(main))
