"""The run of ``tgpo eval``: the tasks (one lm-eval TaskManager per run), the model for each backend, lm-eval's
``simple_evaluate``, then the report (:mod:`tgpo.eval.report`)."""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from tgpo.eval.report import REQUEST_CACHE, render_summary, summarise, write_manifest, write_outputs
from tgpo.eval.settings import (
    EvalInputError,
    chat_url,
    check_args,
    check_limit,
    check_output_dir,
    model_slug,
    parse_kv,
)
from tgpo.resources import SYSTEM_PROMPT


def tasks_dir() -> Path:
    """The folder of tgpo's lm-eval tasks, as installed (package resources, never a path into a checkout)."""
    return Path(str(files("tgpo.tasks")))


def load_tasks(include_path: Path, names: Sequence[str], num_samples: int | None, metadata: Mapping[str, Any]):
    """The run's one lm-eval TaskManager over ``include_path``, and the requested tasks and groups built from it (their
    data read and checked now, before any model loads), with ``num_samples`` as every task's ``repeats``.

    ``simple_evaluate`` takes the built objects: ``TaskManager.load`` passes a built Task or Group through unchanged,
    so what was checked here is what runs. Raises :class:`EvalInputError` naming an unknown task or bad data."""
    from lm_eval.tasks import TaskManager

    from tgpo.tasks import BenchmarkDataError

    tm = TaskManager(include_path=str(include_path), include_defaults=False, metadata=dict(metadata))
    unknown = [n for n in names if n not in tm.all_tasks]
    if unknown:
        known = ", ".join(n for n in tm.all_tasks if not n.startswith("_"))
        raise EvalInputError(f"unknown task {unknown[0]!r}; known: {known}")
    try:
        built = [tm.load([name]) for name in names]
    except BenchmarkDataError as e:
        raise EvalInputError(str(e)) from None
    objects = []
    for name, loaded in zip(names, built):
        objects.append(loaded["groups"].get(name) or loaded["tasks"][name])
        if num_samples is not None:
            for task in loaded["tasks"].values():
                task.set_config(key="repeats", value=int(num_samples))
    return tm, objects


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
    from tgpo.eval import backends as eb

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


def run_from_args(args: argparse.Namespace) -> int:
    """``tgpo eval`` with parsed arguments: the exit status (0 complete, 1 incomplete, 2 bad input)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tgpo.eval import backends as eb

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
    think = detect_prompt_ends_in_think(args, extra)
    tm, task_objects = load_tasks(include_path, names, args.num_samples, {"prompt_ends_in_think": think})
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.backend == "api" and not args.no_cache and eb.cache_is_complete(out_dir / REQUEST_CACHE):
        from tgpo.outputs import archive_existing

        archive_existing(out_dir, [REQUEST_CACHE])  # answers of a finished run: start afresh, keep them aside

    from lm_eval import simple_evaluate

    from tgpo import scoring

    scoring.warmup()
    lm = build_model(args, out_dir, extra)
    cache = getattr(lm, "cache", None)
    started = _dt.datetime.now(_dt.timezone.utc)
    try:
        results = simple_evaluate(
            model=lm,
            tasks=task_objects,
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
