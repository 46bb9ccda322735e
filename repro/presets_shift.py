"""How much each row of a Table-1-shaped table moves between two settings presets: per row and column, the paired
difference (other preset − base preset, same seeds and data order) with its 95% t interval over seeds, read from
the two tables' committed ``*_runs.json`` (no training).

    python -m repro.presets_shift [--profile lab] [--table table1] [--base table1_6seeds]
                                  [--other table1_authors_final_6seeds]

Output: ``results/<profile>/<table>_presets_shift.{md,csv}`` (earlier ones are moved to ``previous/``).
"""

from __future__ import annotations

import json
import sys

import pandas as pd

from repro import options, paths, session, stats, table_config, tables

NAME = "presets_shift"


def shift_frame(base: list[dict], other: list[dict], table: table_config.Table) -> pd.DataFrame:
    """Per row label present in both: ``<col> base``, ``<col> other``, ``Δ <col>`` and ``Δ <col> ci``."""
    wide_base = tables.wide_scores(base, table.columns, table.averages)
    wide_other = tables.wide_scores(other, table.columns, table.averages)
    rows = [r for r in table.labels if r in wide_base.index.get_level_values("row")
            and r in wide_other.index.get_level_values("row")]
    out = {}
    for row in rows:
        a, b = wide_base.xs(row, level="row"), wide_other.xs(row, level="row")
        seeds = a.index.intersection(b.index)
        cells = {}
        for col in wide_base.columns:
            diff = stats.paired_t_interval(b.loc[seeds, col].to_numpy(), a.loc[seeds, col].to_numpy())
            cells.update({f"{col} base": float(a.loc[seeds, col].mean()), f"{col} other": float(b.loc[seeds, col].mean()),
                          f"Δ {col}": diff.mean, f"Δ {col} ci": diff.half})
        cells["n_seeds"] = len(seeds)
        out[row] = cells
    return pd.DataFrame.from_dict(out, orient="index")


def main(argv: list[str] | None = None) -> int:
    parser = options._Parser(prog="python -m repro.presets_shift", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=table_config.LAB_PROFILES, default="lab")
    parser.add_argument("--table", default="table1")
    parser.add_argument("--base", default="table1_6seeds", help="stem of the base preset's outputs")
    parser.add_argument("--other", default="table1_authors_final_6seeds", help="stem of the other preset's outputs")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    folder = paths.RESULTS / args.profile
    runs = {}
    for stem in (args.base, args.other):
        path, manifest = folder / f"{stem}_runs.json", folder / f"{stem}_manifest.json"
        if not path.exists() or not manifest.exists():
            raise table_config.UsageError(f"{path} (or its manifest) does not exist: run python -m repro.{args.table} first")
        runs[stem] = (json.loads(path.read_text()), json.loads(manifest.read_text()).get("preset"))
    table = table_config.load_table(args.profile, args.table)
    frame = shift_frame(runs[args.base][0], runs[args.other][0], table)
    (base_preset, other_preset) = runs[args.base][1], runs[args.other][1]
    out_dir = session.archive(options.output_dir(args), [f"{args.table}_{NAME}{s}" for s in (".md", ".csv")])
    frame.round(3).to_csv(out_dir / f"{args.table}_{NAME}.csv", index_label="row")
    labels = [c.removesuffix(" base") for c in frame.columns if c.endswith(" base")]
    cells = pd.DataFrame({
        label: [f"{r[f'{label} base']:.1f} → {r[f'{label} other']:.1f} ({tables.cell(r[f'Δ {label}'], r[f'Δ {label} ci'], 1, signed=True)})"
                for _, r in frame.iterrows()]
        for label in labels}, index=frame.index)
    cells["seeds"] = frame["n_seeds"].astype(int)
    text = (f"# {table['title']}: preset {base_preset} → {other_preset} ({args.profile} profile)\n\n"
            f"Greedy pass@1 (%): mean under `{base_preset}` → mean under `{other_preset}` (paired difference, same seeds "
            "and data order, ± half-width of the 95% t interval over seeds). From "
            f"`{args.base}_runs.json` and `{args.other}_runs.json`; made by `python -m repro.{NAME}`.\n\n"
            + cells.rename_axis("").to_markdown(disable_numparse=True) + "\n")
    (out_dir / f"{args.table}_{NAME}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(options.cli(main))
