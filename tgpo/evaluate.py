"""``tgpo eval``: score any checkpoint on the paper's benchmarks with the paper's protocol (docs/method.md §4).

Runs lm-eval (``simple_evaluate``) over the tasks shipped in ``tgpo.tasks`` with the model's chat template, then
writes, into ``--output-dir`` (earlier outputs there move to ``previous/<UTC time>/``):

- ``results.json`` — lm-eval's results (metrics, configs, versions), and ``samples_<task>.jsonl`` — every
  prompt, every sampled completion and its per-problem metrics;
- ``summary.csv`` — one row per task and group: ``task``, the strict grade (``pass@1``, ``pass@k``), the authors'
  rule (``pass@1_authors``, ``pass@k_authors``), ``disagreement`` (share of samples the two grade differently),
  ``n_problems``, ``n_samples``, ``status`` and ``missing`` (``pass@k`` only where k > 1; groups are the
  unweighted mean of their leaf tasks). A task with samples that got no usable answer is ``incomplete``, its
  scores left empty, and the run exits with status 1;
- ``summary.md`` — the authors'-rule scores beside the paper's reported numbers
  (``tgpo/resources/paper_reference.csv``), with the strict grade next to them;
- ``manifest.json`` — git sha, library versions, arguments.

Bad input (unknown task, a limit below 1 problem, a malformed benchmark file, an unusable output folder) stops
the command with one line and exit status 2 before any model loads; so does a prompt that would not fit the
model's context (hf, vllm) or a request the server refuses (api). With ``--backend api`` every answer is cached
in ``<output-dir>/request_cache.sqlite``: rerunning the same command resends only what is missing.

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
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from tgpo.resources import PAPER_REFERENCE_CSV as PAPER_REFERENCE
from tgpo.resources import SYSTEM_PROMPT

TASK_PREFIX = "tgpo_"
METRIC_FILTER = "none"  # the grading filter's name in tasks/_tgpo_template_yaml
SCORE_FIELDS = ("pass@1", "pass@k", "pass@1_authors", "pass@k_authors", "disagreement")
PER_K_FIELDS = ("pass@k", "pass@k_authors")  # only where k > 1
SUMMARY_FIELDS = ("task", *SCORE_FIELDS, "n_problems", "n_samples", "status", "missing")
REQUEST_CACHE = "request_cache.sqlite"
PREVIOUS = "previous"

EPILOG = """\
examples:
  # a public checkpoint on a GPU, the full paper protocol (avg@32 on AIME24/25 and AMC):
  tgpo eval --model Elliott/LUFFY-Qwen-Math-7B-Zero --backend vllm --max-model-len 16384
  # any OpenAI-compatible server (vllm serve, sglang, a hosted API):
  tgpo eval --model my-model --backend api --base-url http://localhost:8000/v1/chat/completions
  # a quick look: 20 problems per benchmark, 4 samples each, shorter outputs:
  tgpo eval --model Qwen/Qwen2.5-Math-1.5B --backend hf --tasks tgpo_math --limit 20 --num-samples 4 \\
      --max-new-tokens 2048

Benchmarks come from <benchmark>.jsonl files ({"id", "problem", "answer"} rows) in TGPO_BENCHMARK_DIR when it
is set and the file is there, else from the Hugging Face Hub. Tasks: tgpo_paper (all nine), tgpo_math,
tgpo_ood, or any of tgpo_math500, tgpo_aime24, tgpo_aime25, tgpo_amc, tgpo_minerva_math, tgpo_olympiadbench,
tgpo_gpqa_diamond, tgpo_mmlu_pro, tgpo_arc_challenge (comma-separated).
Exit status: 0 complete, 1 incomplete (samples without an answer: rerun to fill them in), 2 bad input.
"""


class EvalInputError(Exception):
    """Bad input, reported as one line with exit status 2."""


def tasks_dir() -> Path:
    """The folder of tgpo's lm-eval tasks, as installed (package resources, never a path into a checkout)."""
    return Path(str(files("tgpo.tasks")))


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
    parser.add_argument("--tasks", default="tgpo_paper", help="comma-separated tasks or groups (default: %(default)s).")
    parser.add_argument("--limit", type=float, help="problems per task (an integer), or a fraction below 1; default: all.")
    parser.add_argument(
        "--num-samples",
        type=int,
        help="samples per problem for every task (default: the paper's: 32 for AIME24/AIME25/AMC, 1 elsewhere).",
    )
    parser.add_argument("--max-new-tokens", type=int, help="generation budget per sample (default: the paper's 8192).")
    parser.add_argument(
        "--max-model-len",
        type=int,
        help="context length to run the model with (vllm: max_model_len; hf: lm-eval's max_length); default: "
        "the model's own. Prompt plus --max-new-tokens must fit it: prompts are never truncated.",
    )
    parser.add_argument("--temperature", type=float, help="sampling temperature (default: the paper's 0.6).")
    parser.add_argument("--top-p", type=float, help="nucleus sampling (default: the paper's 1.0).")
    parser.add_argument("--output-dir", type=Path, help="where results go (default: results/eval/<model-slug>/).")
    parser.add_argument(
        "--include-path", type=Path, default=None, help="folder of task YAMLs (default: the tasks installed with tgpo)."
    )
    parser.add_argument(
        "--batch-size", default=None, help="lm-eval batch size (default: 8 for hf, auto for vllm; api: one request per sample)."
    )
    parser.add_argument(
        "--num-concurrent", type=int, default=8, help="parallel requests for --backend api (default: %(default)s)."
    )
    parser.add_argument(
        "--max-retries", type=int, default=5, help="api: retries of a failed request (default: %(default)s)."
    )
    parser.add_argument(
        "--retry-wait",
        type=float,
        default=1.0,
        help="api: seconds before the first retry, doubling for each next one up to 60 (default: %(default)s).",
    )
    parser.add_argument(
        "--request-timeout", type=int, default=600, help="api: seconds per request (default: %(default)s)."
    )
    parser.add_argument(
        "--no-cache", action="store_true", help=f"api: do not read or write {REQUEST_CACHE} in the output folder."
    )
    parser.add_argument(
        "--prompt-ends-in-think",
        action="store_true",
        help="api: the server's chat template ends the prompt with '<think>\\n' (the authors' grade then splits "
        "the response at </think>); hf/vllm find this out from the tokenizer.",
    )
    parser.add_argument(
        "--model-args",
        default="",
        help="extra lm-eval model arguments, k=v,k=v (e.g. dtype=bfloat16,gpu_memory_utilization=0.8).",
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


def parse_kv(text: str, flag: str) -> dict[str, Any]:
    """``"a=1,b=x,c=None"`` -> ``{"a": 1, "b": "x", "c": None}`` (lm-eval's own parser), every part a k=v."""
    from lm_eval.utils import simple_parse_args_string

    bad = [p for p in (text or "").split(",") if p.strip() and "=" not in p]
    if bad:
        raise EvalInputError(f"{flag}: expected k=v,k=v, got {bad[0]!r}")
    return simple_parse_args_string(text)


def chat_url(base_url: str) -> str:
    url = base_url.rstrip("/")
    if not url.endswith("/chat/completions"):
        url += "/chat/completions"
    return url


# --------------------------------------------------------------------------------------------------------
# Checks before any model loads
# --------------------------------------------------------------------------------------------------------


def check_limit(limit: float | None) -> int | float | None:
    """``--limit`` as lm-eval takes it: a whole number of problems, or a fraction in (0, 1)."""
    if limit is None:
        return None
    if not limit > 0:
        raise EvalInputError(f"--limit must be at least 1 problem or a fraction above 0, got {limit:g}")
    if limit < 1:
        return limit
    if not float(limit).is_integer():
        raise EvalInputError(f"--limit above 1 must be a whole number of problems, got {limit:g}")
    return int(limit)


def check_output_dir(path: Path) -> None:
    """The output folder exists (or can be created) and accepts files."""
    if path.exists() and not path.is_dir():
        raise EvalInputError(f"--output-dir {path} is a file, not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise EvalInputError(f"--output-dir {path} cannot be created: {probe} is a file")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".tgpo-write-check-"):
            pass
    except OSError as e:
        raise EvalInputError(f"--output-dir {path} is not writable ({e.strerror})") from None


def check_args(args: argparse.Namespace) -> None:
    if args.num_samples is not None and args.num_samples < 1:
        raise EvalInputError(f"--num-samples must be at least 1, got {args.num_samples}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise EvalInputError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.max_model_len is not None and args.max_model_len < 2:
        raise EvalInputError(f"--max-model-len must be at least 2, got {args.max_model_len}")
    if args.max_retries < 0 or args.retry_wait < 0 or args.request_timeout < 1:
        raise EvalInputError("--max-retries and --retry-wait must be >= 0 and --request-timeout >= 1")
    if args.backend == "api" and not args.base_url:
        raise EvalInputError("--backend api needs --base-url")
    if args.backend == "api" and args.no_chat_template:
        raise EvalInputError("--backend api needs the chat format (drop --no-chat-template)")


def make_task_manager(include_path: Path, num_samples: int | None = None, metadata: Mapping[str, Any] | None = None):
    """lm-eval TaskManager over ``include_path`` only; ``num_samples`` overrides every task's ``repeats``.

    ``load`` is memoised, so the tasks loaded (and their data checked) before the model loads are the ones
    ``simple_evaluate`` runs.
    """
    from lm_eval.tasks import TaskManager

    class _TGPOTaskManager(TaskManager):
        def load(self, tasks, *a, **kw):
            key = tuple(tasks) if isinstance(tasks, (list, tuple)) else (tasks,)
            if key not in self._loaded:
                loaded = super().load(tasks, *a, **kw)
                if num_samples is not None:
                    for task in loaded["tasks"].values():
                        task.set_config(key="repeats", value=int(num_samples))
                self._loaded[key] = loaded
            return self._loaded[key]

    tm = _TGPOTaskManager(include_path=str(include_path), include_defaults=False, metadata=dict(metadata or {}))
    tm._loaded = {}
    return tm


def check_task_names(tm, names: list[str]) -> None:
    """Every name is a task or group of the task folder (no data is read)."""
    unknown = [n for n in names if n not in tm.all_tasks]
    if unknown:
        known = ", ".join(n for n in tm.all_tasks if not n.startswith("_"))
        raise EvalInputError(f"unknown task {unknown[0]!r}; known: {known}")


def load_tasks(tm, names: list[str]):
    """Load ``names`` (tasks and their data) or raise :class:`EvalInputError` naming what is wrong."""
    from tgpo.tasks import BenchmarkDataError

    check_task_names(tm, names)
    try:
        return tm.load(names)
    except BenchmarkDataError as e:
        raise EvalInputError(str(e)) from None


def prompt_ends_in_think(tokenizer) -> bool:
    """Whether the chat template ends a prompt with ``<think>\\n`` (as the authors' script tests it)."""
    turns = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "1+1?"}]
    try:
        prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - some templates refuse a system turn
        prompt = tokenizer.apply_chat_template(turns[1:], tokenize=False, add_generation_prompt=True)
    return str(prompt).endswith("<think>\n")


def detect_prompt_ends_in_think(args: argparse.Namespace, extra: Mapping[str, Any]) -> bool:
    if args.backend == "api":
        return bool(args.prompt_ends_in_think)
    if args.no_chat_template:
        return False
    from transformers import AutoTokenizer

    name = extra.get("tokenizer") or args.model
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=bool(extra.get("trust_remote_code")))
    except Exception as e:  # noqa: BLE001 - a wrong path or id: one line
        raise EvalInputError(f"cannot load the tokenizer of {name} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    return prompt_ends_in_think(tokenizer)


# --------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------


def build_model(args: argparse.Namespace, out_dir: Path, extra: Mapping[str, Any]):
    """The lm-eval model object for the chosen backend (guarded against truncation; api: cached, retried)."""
    from tgpo import eval_backends as eb

    if args.backend == "api":
        return eb.ChatCompletionsClient(
            model=args.model,
            base_url=chat_url(args.base_url),
            num_concurrent=args.num_concurrent,
            max_retries=args.max_retries,
            retry_wait=args.retry_wait,
            timeout=args.request_timeout,
            cache_path=None if args.no_cache else out_dir / REQUEST_CACHE,
            **extra,
        )
    if args.backend == "hf":
        device = args.device
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        model_args = {"pretrained": args.model, **extra}
        if args.max_model_len:
            model_args["max_length"] = args.max_model_len
        lm = eb.GuardedHFLM.create_from_arg_obj(model_args, {"batch_size": args.batch_size or 8, "device": device})
    else:
        model_args = {"pretrained": args.model, **extra}
        if args.max_model_len:
            model_args["max_model_len"] = args.max_model_len
        lm = eb.guarded_vllm_class().create_from_arg_obj(model_args, {"batch_size": args.batch_size or "auto"})
    lm.display_name = args.model
    return lm


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
    gen.update(parse_kv(args.gen_kwargs, "--gen-kwargs"))
    return gen


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except EvalInputError as e:
        print(f"tgpo eval: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tgpo import eval_backends as eb

    check_args(args)
    limit = check_limit(args.limit)
    out_dir = Path(args.output_dir or Path("results") / "eval" / model_slug(args.model))
    check_output_dir(out_dir)
    include_path = Path(args.include_path) if args.include_path else tasks_dir()
    if not include_path.is_dir():
        raise EvalInputError(f"task folder {include_path} not found (--include-path)")
    extra = parse_kv(args.model_args, "--model-args")
    gen_kwargs = build_gen_kwargs(args)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not names:
        raise EvalInputError("--tasks is empty")
    check_task_names(make_task_manager(include_path), names)
    think = detect_prompt_ends_in_think(args, extra)
    tm = make_task_manager(include_path, args.num_samples, {"prompt_ends_in_think": think})
    load_tasks(tm, names)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.backend == "api" and not args.no_cache and eb.cache_is_complete(out_dir / REQUEST_CACHE):
        from tgpo.outputs import archive_existing

        archive_existing(out_dir, [REQUEST_CACHE])  # answers of a finished run: start afresh, keep them aside

    from lm_eval import simple_evaluate

    from tgpo import grading

    grading.warmup()
    lm = build_model(args, out_dir, extra)
    cache = getattr(lm, "cache", None)
    started = _dt.datetime.now(_dt.timezone.utc)
    try:
        results = simple_evaluate(
            model=lm,
            tasks=names,
            limit=limit,
            gen_kwargs=gen_kwargs or None,
            task_manager=tm,
            apply_chat_template=not args.no_chat_template,
            log_samples=True,
            random_seed=args.seed,
            numpy_random_seed=args.seed,
            torch_random_seed=args.seed,
            fewshot_random_seed=args.seed,
        )
        missing = dict(getattr(lm, "missing", {}) or {})
        if cache is not None and not missing:
            cache.mark_complete()
    except (eb.ContextTooLong, eb.ServerRefused) as e:
        print(f"tgpo eval: {e}", file=sys.stderr)
        return 2
    finally:
        if cache is not None:
            cache.close()
    if results is None:  # non-zero rank in a distributed run
        return 0
    rows = summarise(results, missing)
    paths = write_outputs(out_dir, results, rows, model_label=args.model)
    paths.append(write_manifest(out_dir, args, lm, extra, gen_kwargs, started, think, missing))
    print(render_summary(rows))
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    if missing:
        tasks = ", ".join(f"{t} ({n})" for t, n in sorted(missing.items()))
        print(
            f"tgpo eval: incomplete: samples without a usable answer after {args.max_retries} retries: {tasks}; "
            f"rerun the same command to request only those",
            file=sys.stderr,
        )
        return 1
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
    rows: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]], model_label: str = "ours"
) -> str:
    """Markdown: one line per task/group — our pass@1 under the authors' rule (the column the reported numbers
    are comparable with), our strict pass@1, the disagreement between the two, pass@k where k > 1, the size —
    then every reported model's score for that benchmark (``reported: <model> (<method>)``; a reported row for
    the same model name as ``model_label`` comes first). Reported numbers come only from ``reference``;
    unknown cells are empty."""
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
    head += ["n"] + [f"reported: {m} ({meth})" for m, meth in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in rows:
        b = benchmark_of(r["task"])
        incomplete = r.get("status") == "incomplete"
        cells = [b + (f" (incomplete: {r.get('missing')} samples missing)" if incomplete else "")]
        cells += [_pct(r.get("pass@1_authors")), _pct(r.get("pass@1")), _pct(r.get("disagreement"))]
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


def write_outputs(
    out_dir: Path, results: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], model_label: str
) -> list[Path]:
    """Write the outputs; earlier ones in ``out_dir`` (all but ``previous/`` and the request cache) move to
    ``previous/<UTC time>/`` first, so no result is overwritten and no stale file stays beside the new ones."""
    from tgpo.outputs import archive_existing

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    earlier = [p.name for p in out_dir.iterdir() if p.name not in (PREVIOUS, REQUEST_CACHE)]
    archive_existing(out_dir, earlier)
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
    lm,
    model_args: Mapping[str, Any],
    gen_kwargs: Mapping[str, Any],
    started: _dt.datetime,
    prompt_think: bool,
    missing: Mapping[str, int],
) -> Path:
    from tgpo.provenance import git_sha, package_versions

    manifest = {
        "command": "tgpo eval",
        "argv": sys.argv,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"},
        "lm_eval_model": type(lm).__name__,
        "model_args": dict(model_args),
        "gen_kwargs": dict(gen_kwargs),
        "prompt_ends_in_think": prompt_think,
        "benchmark_dir": os.environ.get("TGPO_BENCHMARK_DIR"),
        "requests": {"sent": getattr(lm, "sent", None), "from_cache": getattr(lm, "cached", None),
                     "missing": dict(missing), "why": dict(getattr(lm, "unusable", {}) or {})},
        "git_sha": git_sha(),
        "versions": package_versions(),
        "started": started.isoformat(),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }
    p = Path(out_dir) / "manifest.json"
    p.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return p
