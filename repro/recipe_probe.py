"""Lab recipe probe: train the probed method (GRPO) with each candidate recipe — student, prompts per step,
learning rate, steps — over seeds, through the same lab runner as the tables, and report each candidate's scores and
its in-distribution gain over its untrained student, with 95% intervals.

    python -m repro.recipe_probe [--profile lab|smoke --seeds N --workers N --no-cache]

Candidates: ``candidates`` in ``repro/configs/<profile>/recipe_probe.yaml``. Outputs in ``results/<profile>/``:
``recipe_probe.csv``, ``recipe_probe.md``, ``recipe_probe_runs.json``, ``recipe_probe_manifest.json``.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import pandas as pd

from repro import options, planning, stats, table_config, tables
from repro.manifest import Manifest, save_runs
from repro.session import archive

NAME = "recipe_probe"
SUFFIXES = (".csv", ".md", "_runs.json", "_manifest.json")
CANDIDATE_KEYS = {"name", "student", "prompts", "lr", "steps", "trainer"}


def main(argv: list[str] | None = None) -> int:
    args = options.parse_args(NAME, __doc__, argv, profiles=table_config.LAB_PROFILES, figures=False)
    table = table_config.load_table(args.profile, options.config_name(args, NAME))
    stem = options.output_stem(options.config_name(args, NAME), args, table)
    rows = candidate_rows(table)
    plan = planning.plan_runs(table, args, rows=rows)
    if args.dry_run:
        return planning.print_plan(plan)
    planning.check_ready(plan)
    out_dir = archive(options.output_dir(args), [stem + s for s in SUFFIXES])
    manifest = Manifest(NAME, args, table, plan.seeds, extra={"candidates": table["candidates"]})

    records = planning.run_plan(plan, args, desc=f"Recipe probe ({args.profile}, {args.preset})")

    frame = probe_frame(records, table, rows)
    frame.round(3).to_csv(out_dir / f"{stem}.csv", index=False)
    text = render(frame, table, args)
    (out_dir / f"{stem}.md").write_text(text)
    save_runs(records, out_dir, stem)
    manifest.write(out_dir, stem, records)
    print(text)
    return 0


def candidate_rows(table: table_config.Table) -> list[table_config.Row]:
    """The untrained student of every candidate's student, then the probed row once per candidate (variant = its
    name): trainer ``learning_rate``, ``max_steps``, ``per_device_train_batch_size = prompts x num_generations`` and
    ``prompts x steps`` RL prompts (drawn i.i.d.)."""
    where = f"config {table.path}"
    candidates = table.get("candidates") or []
    if not candidates:
        raise table_config.UsageError(f"{where}: 'candidates' (a list of {{name, student, prompts, lr, steps}}) is required")
    (probed,) = table.rows if len(table.rows) == 1 else (None,)
    if probed is None or not probed.trained:
        raise table_config.UsageError(f"{where}: 'rows' must name the one probed method, e.g. [grpo]")
    generations = table.trainer.get("num_generations", 8)
    rows, students = [], []
    for c in candidates:
        missing, unknown = CANDIDATE_KEYS - {"trainer"} - set(c), set(c) - CANDIDATE_KEYS
        if missing or unknown:
            raise table_config.UsageError(f"{where}: candidate {c!r}: missing {sorted(missing)}, unknown {sorted(unknown)}")
        for key in ("prompts", "steps"):
            if not isinstance(c[key], int) or isinstance(c[key], bool) or c[key] < 1:
                raise table_config.UsageError(f"{where}: candidate {c['name']!r}: {key}={c[key]!r}; expected a whole number >= 1")
        trainer = {**probed.trainer, **(c.get("trainer") or {}), "learning_rate": c["lr"], "max_steps": c["steps"],
                   "per_device_train_batch_size": c["prompts"] * generations}
        rows.append(replace(probed, key=f"{probed.key}@{c['name']}", variant=str(c["name"]), label=str(c["name"]),
                            student=c["student"], train_size=c["prompts"] * c["steps"], trainer=trainer))
        students.append(c["student"])
    bases = [table_config.Row(key=f"base@{s}", method=table_config.BASE, label=f"{table_config.BASE_LABEL} ({s})", variant=s, student=s)
             for s in dict.fromkeys(students)]
    names = [row.label for row in rows]
    if len(set(names)) < len(names):
        raise table_config.UsageError(f"{where}: candidate names must be unique")
    return bases + rows


def probe_frame(records: list[dict], table: table_config.Table, rows: list[table_config.Row]) -> pd.DataFrame:
    """Per row: its settings, each column's mean ± 95% half-width, and (candidates) the in-distribution gain over
    its untrained student as a t interval over seeds (the untrained student is the same at every seed)."""
    labels = [row.label for row in rows]
    summary = tables.summary_table(records, table.columns, table.averages, labels)
    wide = tables.wide_scores(records, table.columns, table.averages)
    headline = next(iter(table.averages))
    by_label = {rec["label"]: rec for rec in records}
    out = []
    for row in rows:
        rec = by_label[row.label]
        entry = {"row": row.label, "student": rec["student"], "method": row.method}
        if row.trained:
            entry.update(prompts=row.trainer["per_device_train_batch_size"] // table.trainer.get("num_generations", 8),
                         lr=row.trainer["learning_rate"], steps=row.trainer["max_steps"],
                         train_seconds=sum(r["train_seconds"] for r in records if r["label"] == row.label)
                         / max(1, sum(r["label"] == row.label for r in records)))
        for col in tables.column_labels(summary):
            entry[f"{col} mean"], entry[f"{col} ci"] = summary.loc[row.label, f"{col} mean"], summary.loc[row.label, f"{col} ci"]
        if row.trained:
            base = wide.xs(f"{table_config.BASE_LABEL} ({rec['student']})", level="row")[headline].iloc[0]
            gain = stats.t_interval(wide.xs(row.label, level="row")[headline].to_numpy() - base)
            entry[f"gain {headline}"], entry[f"gain {headline} ci"] = gain.mean, gain.half
        entry["n_seeds"] = int(summary.loc[row.label, "n_seeds"])
        out.append(entry)
    return pd.DataFrame(out)


def render(frame: pd.DataFrame, table: table_config.Table, args) -> str:
    headline = next(iter(table.averages))
    shown = pd.DataFrame({"row": frame["row"]})
    for col in ("prompts", "lr", "steps"):
        if col in frame:
            shown[col] = frame[col].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    for col in [*table.columns.values(), *table.averages]:
        shown[col] = [tables.cell(m, h) for m, h in zip(frame[f"{col} mean"], frame[f"{col} ci"])]
    gain = frame.get(f"gain {headline}")
    shown[f"gain {headline}"] = ["" if pd.isna(m) else tables.cell(m, h, signed=True)
                                 for m, h in zip(gain, frame[f"gain {headline} ci"])] if gain is not None else ""
    shown["seeds"] = frame["n_seeds"]
    return (f"# {table['title']} ({table.profile} profile, preset {args.preset}, method {table.rows[0].label})\n\n"
            + shown.to_markdown(index=False, disable_numparse=True) + "\n\nGreedy pass@1 (%), mean ± half-width of the 95% interval: t over "
            "seeds (the untrained students: over problems). Gain = candidate − its untrained student in "
            f"{headline}, a t interval over seeds. Rollouts per step = prompts × "
            f"{table.trainer.get('num_generations', 8)}; RL prompts = prompts × steps, drawn i.i.d. from the training sums.\n")


if __name__ == "__main__":
    sys.exit(options.cli(main))
