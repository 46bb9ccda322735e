"""``tgpo eval``: score any checkpoint on the paper's benchmarks with the paper's protocol (SPEC §4).

Runs lm-eval (``simple_evaluate``) over the tasks in ``tasks/`` with the model's chat template, then writes,
into ``--output-dir``:

- ``results.json`` — lm-eval's results (metrics, configs, versions), and ``samples_<task>.jsonl`` — every
  prompt, every sampled completion and its per-problem metrics;
- ``summary.csv`` — one row per task and group: ``task, pass@1, pass@k, n_problems, n_samples``
  (``pass@k`` only where k > 1; groups are the unweighted mean of their leaf tasks);
- ``summary.md`` — our scores beside the paper's reported numbers (``tgpo/resources/paper_reference.csv``);
- ``manifest.json`` — git sha, library versions, arguments.

The post-processing (:func:`summarise`, :func:`load_paper_reference`, :func:`comparison_table`) is pure and
testable without a model.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tgpo.resources import PAPER_REFERENCE_CSV as PAPER_REFERENCE

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TASKS_DIR = REPO_ROOT / "tasks"
TASK_PREFIX = "tgpo_"
METRIC_FILTER = "none"  # the keep-all filter's name in tasks/_tgpo_template_yaml
SUMMARY_FIELDS = ("task", "pass@1", "pass@k", "n_problems", "n_samples")

EPILOG = """\
examples:
  # a public checkpoint on a GPU, the full paper protocol (avg@32 on AIME24/25 and AMC):
  tgpo eval --model Elliott/LUFFY-Qwen-Math-7B-Zero --backend vllm
  # any OpenAI-compatible server (vllm serve, sglang, a hosted API):
  tgpo eval --model my-model --backend api --base-url http://localhost:8000/v1/chat/completions
  # a quick look: 20 problems per benchmark, 4 samples each, shorter outputs:
  tgpo eval --model Qwen/Qwen2.5-Math-1.5B --backend hf --tasks tgpo_math --limit 20 --num-samples 4 \\
      --max-new-tokens 2048

Benchmarks come from the Hugging Face Hub unless TGPO_BENCHMARK_DIR points at a folder of
<benchmark>.jsonl files ({"id", "problem", "answer"} rows). Tasks: tgpo_paper (all nine), tgpo_math,
tgpo_ood, or any of tgpo_math500, tgpo_aime24, tgpo_aime25, tgpo_amc, tgpo_minerva_math,
tgpo_olympiadbench, tgpo_gpqa_diamond, tgpo_mmlu_pro, tgpo_arc_challenge (comma-separated).
"""


# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--model", required=True, help="Hub id or local path (hf/vllm); model name sent to the server (api).")
    parser.add_argument(
        "--backend",
        choices=("hf", "vllm", "api"),
        default="hf",
        help="hf: transformers generate (CPU or GPU); vllm: vLLM offline engine; api: an OpenAI-compatible "
        "chat-completions endpoint given by --base-url (default: %(default)s).",
    )
    parser.add_argument(
        "--base-url",
        help="chat-completions URL for --backend api, e.g. http://localhost:8000/v1/chat/completions "
        "(a bare http://host:port/v1 gets /chat/completions appended). Key: $OPENAI_API_KEY if needed.",
    )
    parser.add_argument(
        "--tasks", default="tgpo_paper", help="comma-separated tasks or groups (default: %(default)s)."
    )
    parser.add_argument(
        "--limit", type=float, help="problems per task (an integer), or a fraction below 1; default: all."
    )
    parser.add_argument(
        "--num-samples",
        type=int,
        help="samples per problem for every task (default: the paper's: 32 for AIME24/AIME25/AMC, 1 elsewhere).",
    )
    parser.add_argument(
        "--max-new-tokens", type=int, help="generation budget per sample (default: the paper's 8192)."
    )
    parser.add_argument(
        "--temperature", type=float, help="sampling temperature (default: the paper's 0.6)."
    )
    parser.add_argument("--top-p", type=float, help="nucleus sampling (default: the paper's 1.0).")
    parser.add_argument(
        "--output-dir", type=Path, help="where results go (default: results/eval/<model-slug>/)."
    )
    parser.add_argument(
        "--include-path",
        type=Path,
        default=None,
        help=f"folder of task YAMLs (default: {DEFAULT_TASKS_DIR}).",
    )
    parser.add_argument(
        "--batch-size", default=None, help="lm-eval batch size (default: 8 for hf, auto for vllm, 1 for api)."
    )
    parser.add_argument(
        "--num-concurrent", type=int, default=8, help="parallel requests for --backend api (default: %(default)s)."
    )
    parser.add_argument(
        "--model-args",
        default="",
        help="extra lm-eval model arguments, k=v,k=v (e.g. dtype=bfloat16,gpu_memory_utilization=0.8,max_model_len=12288).",
    )
    parser.add_argument(
        "--gen-kwargs", default="", help="extra generation arguments, k=v,k=v (override the task YAMLs)."
    )
    parser.add_argument(
        "--no-chat-template",
        action="store_true",
        help="feed the system prompt and problem as plain text (models without a chat template; not for api).",
    )
    parser.add_argument("--device", default=None, help="hf device (default: cuda if available, else cpu).")
    parser.add_argument("--seed", type=int, default=0, help="run seed (python/numpy/torch) (default: %(default)s).")


def model_slug(model: str) -> str:
    """A folder name for a model id or path: ``Elliott/LUFFY-Qwen-Math-7B-Zero`` -> ``Elliott__LUFFY-Qwen-Math-7B-Zero``."""
    s = model.rstrip("/")
    if os.path.isabs(s):
        s = "/".join(Path(s).parts[-2:])
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s.replace("/", "__")).strip("_") or "model"


def parse_kv(text: str) -> dict[str, Any]:
    """``"a=1,b=x,c=None"`` -> ``{"a": 1, "b": "x", "c": None}`` (numbers, booleans and None converted)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        if "=" not in part:
            raise ValueError(f"expected k=v, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = _convert(v.strip())
    return out


def _convert(v: str) -> Any:
    low = v.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def chat_url(base_url: str) -> str:
    url = base_url.rstrip("/")
    if not url.endswith("/chat/completions"):
        url += "/chat/completions"
    return url


def build_model(args: argparse.Namespace) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(lm-eval model name, model_args, extra simple_evaluate kwargs) for the chosen backend."""
    extra = parse_kv(args.model_args)
    kwargs: dict[str, Any] = {}
    if args.backend == "hf":
        device = args.device
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        kwargs["device"] = device
        kwargs["batch_size"] = args.batch_size or 8
        return "hf", {"pretrained": args.model, **extra}, kwargs
    if args.backend == "vllm":
        kwargs["batch_size"] = args.batch_size or "auto"
        return "vllm", {"pretrained": args.model, **extra}, kwargs
    if not args.base_url:
        raise SystemExit("tgpo eval: --backend api needs --base-url")
    kwargs["batch_size"] = args.batch_size or 1
    model_args = {
        "model": args.model,
        "base_url": chat_url(args.base_url),
        "num_concurrent": args.num_concurrent,
        "max_retries": 3,
        "tokenized_requests": False,
        **extra,
    }
    return "local-chat-completions", model_args, kwargs


def build_gen_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    gen: dict[str, Any] = {}
    if args.max_new_tokens is not None:
        gen["max_gen_toks"] = args.max_new_tokens
    if args.temperature is not None:
        gen["temperature"] = args.temperature
        if args.temperature == 0 and args.backend == "hf":
            gen["do_sample"] = False  # HF refuses temperature 0 with sampling on
    if args.top_p is not None:
        gen["top_p"] = args.top_p
    if args.backend == "api":
        # lm-eval's API models send "seed": 1234 with every request; servers that honour it (vLLM) would
        # return k identical repeats. None overrides it (sent as null = unseeded).
        gen["seed"] = None
    gen.update(parse_kv(args.gen_kwargs))
    return gen


def make_task_manager(include_path: Path, num_samples: int | None = None):
    """lm-eval TaskManager over ``include_path`` only; ``num_samples`` overrides every task's ``repeats``."""
    from lm_eval.tasks import TaskManager

    class _TGPOTaskManager(TaskManager):
        def load(self, tasks, *a, **kw):
            loaded = super().load(tasks, *a, **kw)
            if num_samples is not None:
                for task in loaded["tasks"].values():
                    task.set_config(key="repeats", value=int(num_samples))
            return loaded

    return _TGPOTaskManager(include_path=str(include_path), include_defaults=False)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.num_samples is not None and args.num_samples < 1:
        raise SystemExit("tgpo eval: --num-samples must be >= 1")
    if args.backend == "api" and args.no_chat_template:
        raise SystemExit("tgpo eval: --backend api needs the chat format (drop --no-chat-template)")
    include_path = Path(args.include_path or DEFAULT_TASKS_DIR)
    if not include_path.is_dir():
        raise SystemExit(f"tgpo eval: task folder {include_path} not found (use --include-path)")
    out_dir = Path(args.output_dir or Path("results") / "eval" / model_slug(args.model))
    out_dir.mkdir(parents=True, exist_ok=True)

    from lm_eval import simple_evaluate

    from tgpo import scoring

    scoring.warmup()
    model, model_args, kwargs = build_model(args)
    gen_kwargs = build_gen_kwargs(args)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    limit = args.limit
    if limit is not None and limit >= 1:
        limit = int(limit)
    started = _dt.datetime.now(_dt.timezone.utc)
    results = simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=tasks,
        limit=limit,
        gen_kwargs=gen_kwargs or None,
        task_manager=make_task_manager(include_path, args.num_samples),
        apply_chat_template=not args.no_chat_template,
        log_samples=True,
        random_seed=args.seed,
        numpy_random_seed=args.seed,
        torch_random_seed=args.seed,
        fewshot_random_seed=args.seed,
        **kwargs,
    )
    if results is None:  # non-zero rank in a distributed run
        return 0
    rows = summarise(results)
    paths = write_outputs(out_dir, results, rows, model_label=args.model)
    write_manifest(out_dir, args, model, model_args, gen_kwargs, started)
    print(render_summary(rows))
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return 0


# --------------------------------------------------------------------------------------------------------
# Pure post-processing
# --------------------------------------------------------------------------------------------------------


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


def summarise(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of ``summary.csv`` from lm-eval's results dict (tasks first, then groups).

    Task rows: ``pass@1`` (mean over problems of the per-problem mean over samples), ``pass@k`` where
    ``n_samples`` (= k, samples per problem) > 1, ``n_problems``. Group rows: the unweighted mean of their
    leaf tasks' scores (the paper's average); ``pass@k`` and ``n_samples`` only when all leaves share one k.
    """
    res = results.get("results", {})
    configs = results.get("configs", {})
    n_seen = results.get("n-samples", {})
    group_subtasks = {k: list(v) for k, v in (results.get("group_subtasks") or {}).items() if v}
    task_rows: dict[str, dict[str, Any]] = {}
    for name, entry in res.items():
        if name in group_subtasks:
            continue
        p1 = _metric(entry, "pass@1")
        if p1 is None:
            continue
        k = int((configs.get(name) or {}).get("repeats") or 1)
        n_problems = (n_seen.get(name) or {}).get("effective")
        if n_problems is None:
            n_problems = entry.get("samples")
        pk = _metric(entry, "pass@k")
        task_rows[name] = {
            "task": name,
            "pass@1": p1,
            "pass@k": pk if k > 1 else None,
            "n_problems": int(n_problems) if n_problems is not None else None,
            "n_samples": k,
        }
    group_rows = []
    for group in group_subtasks:
        leaves = [task_rows[t] for t in _leaves(group, group_subtasks) if t in task_rows]
        if not leaves:
            continue
        ks = {r["n_samples"] for r in leaves}
        k = ks.pop() if len(ks) == 1 else None
        pks = [r["pass@k"] for r in leaves]
        group_rows.append(
            {
                "task": group,
                "pass@1": sum(r["pass@1"] for r in leaves) / len(leaves),
                "pass@k": sum(pks) / len(pks) if k and k > 1 and None not in pks else None,
                "n_problems": sum(r["n_problems"] or 0 for r in leaves),
                "n_samples": k,
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
    rows: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]], model_label: str = "ours"
) -> str:
    """Markdown: one line per task/group, our pass@1 (and pass@k) in %, then every reported model's score
    for that benchmark (columns headed ``reported: <model> (<method>)``). A reported row for the same model
    name as ``model_label`` comes first. Reported numbers come only from ``reference``; unknown cells are
    empty."""
    benchmarks = [benchmark_of(r["task"]) for r in rows]
    ref = [r for r in reference if r.get("benchmark") in benchmarks and r.get("score") is not None]
    columns: list[tuple[str, str]] = []
    for r in ref:
        key = (r["model"], r["method"])
        if key not in columns:
            columns.append(key)
    columns.sort(key=lambda c: not _same_model(c[0], model_label))
    scores = {(r["model"], r["method"], r["benchmark"]): r["score"] for r in ref}
    any_k = any(r.get("pass@k") is not None for r in rows)
    head = ["benchmark", f"ours: {model_label} pass@1"]
    if any_k:
        head.append("ours pass@k")
    head += ["n"] + [f"reported: {m} ({meth})" for m, meth in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in rows:
        b = benchmark_of(r["task"])
        cells = [b, _pct(r.get("pass@1"))]
        if any_k:
            k = r.get("n_samples")
            cells.append(f"{_pct(r.get('pass@k'))} (k={k})" if r.get("pass@k") is not None else "")
        n = r.get("n_problems")
        cells.append("" if n is None else f"{n}×{r.get('n_samples') or '?'}")
        cells += [_num(scores.get((m, meth, b))) for m, meth in columns]
        lines.append("| " + " | ".join(cells) + " |")
    sources = sorted({r["source"] for r in ref if r.get("source")})
    notes = sorted({f"{r['model']}: {r['note']}" for r in ref if r.get("note")})
    foot = ["", "Scores in %. Ours: Math-Verify alone (tgpo.scoring), pass@1 = mean over samples."]
    if columns:
        foot.append("Reported numbers from tgpo/resources/paper_reference.csv; sources: " + "; ".join(sources) + ".")
    foot += [f"Note — {n}" for n in notes]
    return "\n".join(lines + foot) + "\n"


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def render_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"{'task':<24} {'pass@1':>8} {'pass@k':>8} {'problems':>9} {'samples':>8}"]
    for r in rows:
        pk = r.get("pass@k")
        lines.append(
            f"{r['task']:<24} {100 * r['pass@1']:>7.1f}% {'' if pk is None else f'{100 * pk:.1f}%':>8} "
            f"{r.get('n_problems') or '':>9} {r.get('n_samples') or '':>8}"
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


def write_outputs(
    out_dir: Path, results: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], model_label: str
) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    samples = results.get("samples") or {}
    body = {k: v for k, v in results.items() if k != "samples"}
    p = out_dir / "results.json"
    p.write_text(json.dumps(body, indent=2, default=_json_default, ensure_ascii=False), encoding="utf-8")
    written.append(p)
    for task, items in samples.items():
        p = out_dir / f"samples_{task}.jsonl"
        with open(p, "w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps(item, default=_json_default, ensure_ascii=False) + "\n")
        written.append(p)
    p = out_dir / "summary.csv"
    p.write_text(summary_csv(rows), encoding="utf-8")
    written.append(p)
    p = out_dir / "summary.md"
    p.write_text(
        f"# {model_label}\n\n" + comparison_table(rows, load_paper_reference(), model_label), encoding="utf-8"
    )
    written.append(p)
    return written


def write_manifest(
    out_dir: Path,
    args: argparse.Namespace,
    model: str,
    model_args: Mapping[str, Any],
    gen_kwargs: Mapping[str, Any],
    started: _dt.datetime,
) -> Path:
    from tgpo.provenance import git_sha, package_versions

    manifest = {
        "command": "tgpo eval",
        "argv": sys.argv,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"},
        "lm_eval_model": model,
        "model_args": dict(model_args),
        "gen_kwargs": dict(gen_kwargs),
        "benchmark_dir": os.environ.get("TGPO_BENCHMARK_DIR"),
        "git_sha": git_sha(),
        "versions": package_versions(),
        "started": started.isoformat(),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }
    p = Path(out_dir) / "manifest.json"
    p.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return p
