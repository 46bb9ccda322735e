"""The report of ``tgpo eval``: ``summary.csv``, ``summary.md`` (beside the paper's reported numbers), the printed
table, lm-eval's ``results.json`` and ``samples_<task>.jsonl``, and ``manifest.json`` (docs/architecture.md).

The post-processing (:func:`summarise`, :func:`load_paper_reference`, :func:`comparison_table`) is pure and testable
without a model.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tgpo.resources import PAPER_REFERENCE_CSV as PAPER_REFERENCE
from tgpo.tasks.utils import METRICS as SCORE_FIELDS  # the metric names, defined once where they are computed

TASK_PREFIX = "tgpo_"
METRIC_FILTER = "none"  # the grading filter's name in tasks/_tgpo_template_yaml
PER_K_FIELDS = ("pass@k", "pass@k_authors")  # only where k > 1
SUMMARY_FIELDS = ("task", *SCORE_FIELDS, "n_problems", "n_samples", "status", "missing")
REQUEST_CACHE = "request_cache.sqlite"
PREVIOUS = "previous"


def _metric(entry: Mapping[str, Any], name: str) -> float | None:
    for key in (f"{name},{METRIC_FILTER}", name):
        v = entry.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _leaves(name: str, group_subtasks: Mapping[str, Sequence[str]]) -> list[str]:
    subs = group_subtasks.get(name)
    if not subs:
        return [name]
    out: list[str] = []
    for s in subs:
        for leaf in _leaves(s, group_subtasks):
            if leaf not in out:
                out.append(leaf)
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    return None if not values or None in values else sum(values) / len(values)


def summarise(results: Mapping[str, Any], missing: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """Rows of ``summary.csv`` from lm-eval's results dict (tasks first, then groups).

    Task rows: every metric of :data:`SCORE_FIELDS` the task reports (``pass@k*`` only where ``n_samples``,
    k, > 1), ``n_problems``, ``status`` and ``missing`` (samples without a usable answer, from ``missing``).
    An incomplete task has empty scores. Group rows: the unweighted mean of their leaf tasks' scores (the
    paper's average); incomplete if any leaf is; ``pass@k*`` and ``n_samples`` only when all leaves share one k.
    """
    missing = dict(missing or {})
    res = results.get("results", {})
    configs = results.get("configs", {})
    n_seen = results.get("n-samples", {})
    group_subtasks = {k: list(v) for k, v in (results.get("group_subtasks") or {}).items() if v}
    task_rows: dict[str, dict[str, Any]] = {}
    for name, entry in res.items():
        if name in group_subtasks or _metric(entry, "pass@1") is None:
            continue
        k = int((configs.get(name) or {}).get("repeats") or 1)
        n_problems = (n_seen.get(name) or {}).get("effective")
        if n_problems is None:
            n_problems = entry.get("samples")
        lost = int(missing.get(name, 0))
        scores = {f: (None if lost or (f in PER_K_FIELDS and k == 1) else _metric(entry, f)) for f in SCORE_FIELDS}
        task_rows[name] = {
            "task": name,
            **scores,
            "n_problems": int(n_problems) if n_problems is not None else None,
            "n_samples": k,
            "status": "incomplete" if lost else "complete",
            "missing": lost,
        }
    group_rows = []
    for group in group_subtasks:
        leaves = [task_rows[t] for t in _leaves(group, group_subtasks) if t in task_rows]
        if not leaves:
            continue
        ks = {r["n_samples"] for r in leaves}
        k = ks.pop() if len(ks) == 1 else None
        lost = sum(r["missing"] for r in leaves)
        scores = {
            f: None if lost or (f in PER_K_FIELDS and not (k and k > 1)) else _mean([r[f] for r in leaves])
            for f in SCORE_FIELDS
        }
        group_rows.append(
            {
                "task": group,
                **scores,
                "n_problems": sum(r["n_problems"] or 0 for r in leaves),
                "n_samples": k,
                "status": "incomplete" if lost else "complete",
                "missing": lost,
            }
        )
    order = {"tgpo_math": 0, "tgpo_ood": 1, "tgpo_paper": 2}
    group_rows.sort(key=lambda r: (order.get(r["task"], 3), r["task"]))
    return list(task_rows.values()) + group_rows


def summary_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt_csv(r.get(k)) for k in SUMMARY_FIELDS})
    return buf.getvalue()


def _fmt_csv(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)


def load_paper_reference(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Rows of ``paper_reference.csv`` (``model, method, benchmark, score, source, note``); score as float or None."""
    with open(path or PAPER_REFERENCE, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        s = (r.get("score") or "").strip()
        r["score"] = float(s) if s else None
    return rows


def benchmark_of(task: str) -> str:
    return task[len(TASK_PREFIX) :] if task.startswith(TASK_PREFIX) else task


def _same_model(a: str, b: str) -> bool:
    return a.rstrip("/").split("/")[-1].lower() == b.rstrip("/").split("/")[-1].lower()


def comparison_table(
    rows: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]], model_label: str = "ours",
    comparable: bool = True,
) -> str:
    """Markdown: one line per task/group — our pass@1 under the authors' rule (the column the reported numbers
    are comparable with), our strict pass@1, the disagreement between the two, pass@k where k > 1, the size —
    then every reported model's score for that benchmark (``reported: <model> (<method>)``; a reported row for
    the same model name as ``model_label`` comes first). Reported numbers come only from ``reference``;
    unknown cells are empty. ``comparable`` false (the run departs from the protocol in a way that changes scores):
    the reported columns are headed "not comparable". A task graded by one rule only (the lab tasks) says so in
    the authors'-rule column."""
    benchmarks = [benchmark_of(r["task"]) for r in rows]
    ref = [r for r in reference if r.get("benchmark") in benchmarks and r.get("score") is not None]
    columns: list[tuple[str, str]] = []
    for r in ref:
        key = (r["model"], r["method"])
        if key not in columns:
            columns.append(key)
    columns.sort(key=lambda c: not _same_model(c[0], model_label))
    scores = {(r["model"], r["method"], r["benchmark"]): r["score"] for r in ref}
    any_k = any(r.get("pass@k") is not None or r.get("pass@k_authors") is not None for r in rows)
    head = ["benchmark", f"ours: {model_label} pass@1 (authors' rule)", "ours pass@1 (strict)", "disagreement"]
    if any_k:
        head.append("ours pass@k (authors' rule / strict)")
    mark = "" if comparable else " — not comparable (see protocol)"
    head += ["n"] + [f"reported: {m} ({meth}){mark}" for m, meth in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in rows:
        b = benchmark_of(r["task"])
        incomplete = r.get("status") == "incomplete"
        cells = [b + (f" (incomplete: {r.get('missing')} samples missing)" if incomplete else "")]
        one_rule = not incomplete and r.get("pass@1_authors") is None and r.get("pass@1") is not None
        cells += ["no authors' rule (one grade)" if one_rule else _pct(r.get("pass@1_authors")), _pct(r.get("pass@1")),
                  "" if one_rule else _pct(r.get("disagreement"))]
        if any_k:
            k = r.get("n_samples")
            has_k = r.get("pass@k") is not None or r.get("pass@k_authors") is not None
            cells.append(f"{_pct(r.get('pass@k_authors'))} / {_pct(r.get('pass@k'))} (k={k})" if has_k else "")
        n = r.get("n_problems")
        cells.append("" if n is None else f"{n}×{r.get('n_samples') or '?'}")
        cells += [_num(scores.get((m, meth, b))) for m, meth in columns]
        lines.append("| " + " | ".join(cells) + " |")
    sources = sorted({r["source"] for r in ref if r.get("source")})
    notes = sorted({f"{r['model']}: {r['note']}" for r in ref if r.get("note")})
    foot = [
        "",
        "Scores in %, pass@1 = mean over samples. Reported numbers are to be compared with the **authors' rule** "
        "column: their grading (Math-Verify on the whole response, or an oat-compatible boxed grader; either "
        "accepting counts). The strict column (the last \\boxed{} after a closed think block, Math-Verify) is "
        "this suite's primary grade; disagreement is the share of samples the two grade differently "
        "(docs/method.md §4).",
    ]
    if columns:
        foot.append("Reported numbers from tgpo/resources/paper_reference.csv; sources: " + "; ".join(sources) + ".")
    foot += [f"Note — {n}" for n in notes]
    return "\n".join(lines + foot) + "\n"


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def render_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    def pct(v):
        return "" if v is None else f"{100 * v:.1f}%"

    lines = [f"{'task':<24} {'pass@1':>8} {'authors':>8} {'disagree':>8} {'pass@k':>8} {'problems':>9} {'samples':>8}  status"]
    for r in rows:
        status = r.get("status", "complete")
        if status == "incomplete":
            status += f" ({r.get('missing')} missing)"
        lines.append(
            f"{r['task']:<24} {pct(r.get('pass@1')):>8} {pct(r.get('pass@1_authors')):>8} "
            f"{pct(r.get('disagreement')):>8} {pct(r.get('pass@k')):>8} "
            f"{r.get('n_problems') or '':>9} {r.get('n_samples') or '':>8}  {status}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------


def _json_default(o: Any) -> Any:
    try:
        from lm_eval.utils import handle_non_serializable

        return handle_non_serializable(o)
    except Exception:
        return str(o)


#: The files a run writes (and archives from an earlier run); nothing else in an output folder is ever moved.
OUTPUT_NAMES = ("results.json", "samples_*.jsonl", "summary.csv", "summary.md", "manifest.json", "lm_eval")


def own_outputs(out_dir: Path) -> list[str]:
    """The entries of ``out_dir`` that an earlier run of ``tgpo eval`` wrote (:data:`OUTPUT_NAMES`)."""
    import fnmatch

    return sorted(p.name for p in Path(out_dir).iterdir() if any(fnmatch.fnmatch(p.name, n) for n in OUTPUT_NAMES))


def _write_text(path: Path, text: str) -> Path:
    """``text`` into ``path`` through a temporary file renamed into place: never a half-written output."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def protocol_line(deviations: Sequence[tuple[str, bool]], reported: bool = True) -> str:
    """``summary.md``'s first line after the title: the paper's protocol, or every way this run departs from it.
    ``reported`` false: no task has reported numbers (the lab tasks), so the line compares with the tasks' own
    settings only."""
    if not reported:
        own = "; ".join(d for d, _ in deviations) or "none"
        return (f"**Protocol:** no reported numbers for these tasks (nothing to compare with); departures from the "
                f"tasks' own settings: {own}.")
    if not deviations:
        return "**Protocol:** the paper's (docs/method.md §4); the reported numbers are comparable."
    comparable = not any(affects for _, affects in deviations)
    tail = ("the reported numbers are comparable." if comparable else
            "the reported numbers are **not comparable** with these scores.")
    return "**Protocol: departs from the paper's** — " + "; ".join(d for d, _ in deviations) + f"; {tail}"


def write_outputs(out_dir: Path, results: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                  run: Mapping[str, Any]) -> tuple[list[Path], dict]:
    """Write the outputs and the manifest; returns ``(paths, manifest)``. An earlier run's outputs in ``out_dir``
    (:data:`OUTPUT_NAMES` only: never a model, tokenizer, checkpoint or cache) move to ``previous/<UTC time>/``
    first, so no result is overwritten and no stale file stays beside the new ones. Each file is written to a
    temporary name and renamed, the manifest last; an ``OSError`` (a full disk) propagates with no half-written
    output under its final name. ``run``: what :func:`tgpo.eval.run.run` knows (settings, model, settings per task)."""
    from tgpo.eval.protocol import deviations
    from tgpo.outputs import archive_existing

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    s = run["settings"]
    reference = load_paper_reference()
    reported = any(benchmark_of(t) in {r["benchmark"] for r in reference} for t in run["generation"])
    found = deviations(limit=run["limit"], backend=s.backend, chat_template=run["chat"] or not reported,
                       settings=run["generation"], repeats=run["repeats"], paper=run["protocol"])
    written = []
    samples = results.get("samples") or {}
    body = {k: v for k, v in results.items() if k != "samples"}
    missing = dict(run.get("missing") or {})
    # lm-eval scores a missing sample as wrong: results.json says itself whether its scores are whole
    body["tgpo_status"] = {"status": "incomplete" if missing else "complete", "missing_samples": missing}
    texts = {"results.json": json.dumps(body, indent=2, default=_json_default, ensure_ascii=False)}
    for task, items in samples.items():
        texts[f"samples_{task}.jsonl"] = "".join(
            json.dumps(item, default=_json_default, ensure_ascii=False) + "\n" for item in items)
    texts["summary.csv"] = summary_csv(rows)
    comparable = not any(affects for _, affects in found)
    texts["summary.md"] = (f"# {s.model}\n\n{protocol_line(found, reported)}\n\n"
                           + comparison_table(rows, reference, s.model, comparable=comparable))
    archive_existing(out_dir, own_outputs(out_dir))
    for name, text in texts.items():
        written.append(_write_text(out_dir / name, text))
    manifest = manifest_of(run, found)
    written.append(_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2, default=str)))
    return written, manifest


def manifest_of(run: Mapping[str, Any], found: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """``manifest.json``: the command, the settings, every task's effective generation settings, the deviations from
    the protocol, the requests (sent, cached, missing, what the server answered as), versions (the grader's too)."""
    from tgpo.grading import grader_versions
    from tgpo.provenance import git_sha, package_versions

    s, lm = run["settings"], run["lm"]
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(s).items() if k != "command"}
    return {
        "command": "tgpo eval",
        "argv": list(s.command) if s.command is not None else ["tgpo.eval.evaluate (Python)"],
        "args": settings,  # every setting of the run (EvalSettings fields)
        "backend": s.backend,
        "lm_eval_model": type(lm).__name__,
        "model_args": dict(run["model_args"]),
        "chat_template": run["chat"],
        "prompt_ends_in_think": run["think"],
        "generation": {t: {k: v for k, v in g.items() if v is not None}  # seed None is a policy, not a gap
                       | {"samples_per_problem": run["repeats"][t][0], "seed_policy": _seed_policy(s, g)}
                       for t, g in run["generation"].items()},
        "protocol_deviations": [{"what": d, "affects_reported": a} for d, a in found],
        "checkpoint_generation_config_ignored": dict(getattr(lm, "checkpoint_generation", {}) or {}),
        "benchmark_dir": os.environ.get("TGPO_BENCHMARK_DIR"),
        "requests": {"sent": getattr(lm, "sent", None), "from_cache": getattr(lm, "cached", None),
                     "missing": dict(run["missing"]), "why": dict(getattr(lm, "unusable", {}) or {}),
                     "served_models": dict(getattr(lm, "served_models", {}) or {}),
                     "server_echoed": dict(getattr(lm, "echoed", {}) or {})},
        "git_sha": git_sha(),
        "versions": package_versions(),
        "grader_versions": grader_versions(),
        "started": run["started"].isoformat(),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }


def _seed_policy(s, settings: Mapping[str, Any]) -> str:
    if not settings.get("do_sample"):
        return "greedy: no randomness"
    if settings.get("seed") is not None:
        return f"every request seeded with {settings['seed']}"
    return {"hf": f"run seed {s.seed} seeds torch once; every repeat an independent sample",
            "vllm": f"engine seed {s.seed}; every repeat an independent sample",
            "api": "no seed sent: every repeat an independent sample"}[s.backend]
