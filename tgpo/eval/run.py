"""The run of an evaluation: the tasks (one lm-eval TaskManager per run), the model for each backend, lm-eval's
``simple_evaluate``, then the report (:mod:`tgpo.eval.report`). :func:`evaluate` is the one entry point: ``tgpo eval``
and ``repro`` call it."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from tgpo.eval.report import REQUEST_CACHE, render_summary, summarise, write_outputs
from tgpo.eval.settings import (
    EvalInputError,
    EvalSettings,
    chat_url,
    check_limit,
    check_output_dir,
    check_settings,
    kv,
    model_slug,
    refuse_overlap,
)
from tgpo.resources import SYSTEM_PROMPT


@dataclasses.dataclass
class EvalResult:
    """What :func:`evaluate` returns. ``scores``: a pandas DataFrame, one row per task and group (the columns of
    ``summary.csv``); ``status``: 0 complete, 1 incomplete (rerun into ``output_dir`` to fill the gaps; an
    interruption raises :class:`EvalInterrupted` instead); ``paths``: the files written; ``manifest``: ``manifest.json`` as a dict."""

    scores: Any
    output_dir: Path
    paths: list[Path]
    status: int
    manifest: dict

    @property
    def complete(self) -> bool:
        return self.status == 0


class EvalInterrupted(Exception):
    """Ctrl-C during generation; every answer received so far is in the request cache."""


def tasks_dir() -> Path:
    """The folder of tgpo's lm-eval tasks, as installed (package resources, never a path into a checkout)."""
    return Path(str(files("tgpo.tasks")))


def task_manager(include_path: Path | None = None, metadata: Mapping[str, Any] | None = None):
    """lm-eval's TaskManager over tgpo's tasks only (or ``include_path``)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(include_path or tasks_dir()), include_defaults=False,
                       metadata=dict(metadata or {}))


def list_tasks(include_path: Path | None = None) -> str:
    """The tasks and groups, one per line, groups marked (``tgpo eval --list-tasks``)."""
    tm = task_manager(include_path)
    groups = set(tm.all_groups)
    return "\n".join(f"{n}{'  (group)' if n in groups else ''}" for n in tm.all_tasks if not n.startswith("_"))


def load_tasks(include_path: Path, names: Sequence[str], num_samples: int | None, metadata: Mapping[str, Any],
               overrides: Mapping[str, Any]):
    """The run's one lm-eval TaskManager, the requested tasks and groups built from it (their data read and checked
    now, before any model loads), and each leaf task's effective generation settings.

    Every leaf task gets ``num_samples`` as its ``repeats`` and its full settings as its ``generation_kwargs``
    (:func:`tgpo.eval.protocol.effective_settings`), through lm-eval's public ``Task.set_config``.
    ``simple_evaluate`` takes the built objects (``TaskManager.load`` passes a built Task or Group through), so what
    was checked here is what runs. Returns ``(tm, objects, settings, protocol, repeats)``: ``protocol`` is each
    task's settings under its YAML alone, ``repeats`` task -> (used, the YAML's). Raises :class:`EvalInputError`."""
    from tgpo.eval.protocol import effective_settings
    from tgpo.tasks import BenchmarkDataError

    tm = task_manager(include_path, metadata)
    unknown = [n for n in names if n not in tm.all_tasks]
    if unknown:
        known = ", ".join(n for n in tm.all_tasks if not n.startswith("_"))
        raise EvalInputError(f"unknown task {unknown[0]!r}; known: {known} (tgpo eval --list-tasks)")
    try:
        built = [tm.load([name]) for name in names]
    except BenchmarkDataError as e:
        raise EvalInputError(str(e)) from None
    objects, settings, protocol, repeats = [], {}, {}, {}
    for name, loaded in zip(names, built):
        objects.append(loaded["groups"].get(name) or loaded["tasks"][name])
        for task_name, task in loaded["tasks"].items():
            yaml_kwargs = dict(task.config.generation_kwargs or {})
            protocol[task_name] = effective_settings(yaml_kwargs, {})
            settings[task_name] = effective_settings(yaml_kwargs, overrides)
            task.set_config(key="generation_kwargs", value=dict(settings[task_name]))
            yaml_repeats = int(task.config.repeats or 1)
            if num_samples is not None:
                task.set_config(key="repeats", value=int(num_samples))
            repeats[task_name] = (int(num_samples or yaml_repeats), yaml_repeats)
    return tm, objects, settings, protocol, repeats


def prompt_ends_in_think(tokenizer) -> bool:
    """Whether the chat template ends a prompt with ``<think>\\n`` (as the authors' script tests it)."""
    turns = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "1+1?"}]
    try:
        prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - some templates refuse a system turn
        prompt = tokenizer.apply_chat_template(turns[1:], tokenize=False, add_generation_prompt=True)
    return str(prompt).endswith("<think>\n")


def inspect_tokenizer(s: EvalSettings, model_args: Mapping[str, Any]) -> tuple[bool, bool]:
    """``(use the chat template, the prompt ends in <think>)``. A model without a chat template gets the plain
    prompt (never lm-eval's traceback; :func:`run` says so in one line)."""
    if s.backend == "api":
        return True, bool(s.prompt_ends_in_think)
    if s.chat_template is False:
        return False, False
    from transformers import AutoTokenizer

    name = model_args.get("tokenizer") or s.model
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=bool(model_args.get("trust_remote_code")))
    except Exception as e:  # noqa: BLE001 - a wrong path or id: one line
        raise EvalInputError(f"cannot load the tokenizer of {name} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not getattr(tokenizer, "chat_template", None):
        if s.chat_template:
            raise EvalInputError(f"{name} has no chat template (drop --chat-template to use the plain prompt)")
        return False, False  # run() says so, once the tasks have loaded
    return True, prompt_ends_in_think(tokenizer)


# --------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------


def build_model(s: EvalSettings, out_dir: Path, model_args: Mapping[str, Any]):
    """The lm-eval model object for the backend: guarded against truncation, every sampling setting explicit, every
    (request, repeat) answer cached in ``out_dir/request_cache.sqlite`` (api: also retried). A model that cannot be
    loaded is one line (:class:`EvalInputError`)."""
    from tgpo.eval import backends as eb

    cache_path = out_dir / REQUEST_CACHE if s.use_cache else None
    if s.backend == "api":
        lm = eb.ChatCompletionsClient(
            model=s.model, base_url=chat_url(s.base_url), num_concurrent=s.num_concurrent, max_retries=s.max_retries,
            retry_wait=s.retry_wait, timeout=s.request_timeout, cache_path=cache_path, **model_args,
        )
        lm.display_name = s.model
        return lm
    args = {"pretrained": s.model, **model_args}
    try:
        if s.backend == "hf":
            device = s.device
            if device is None:
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
            if s.max_model_len:
                args["max_length"] = s.max_model_len
            batch = s.batch_size or 8
            lm = eb.GuardedHFLM.create_from_arg_obj(args, {"batch_size": batch, "device": device})
            lm.resume_chunk = 4 * int(batch) if str(batch).isdigit() else 64  # answers cached every 4 batches
        else:
            if s.max_model_len:
                args["max_model_len"] = s.max_model_len
            args.setdefault("seed", s.seed)
            lm = eb.guarded_vllm_class().create_from_arg_obj(args, {"batch_size": s.batch_size or "auto"})
    except (OSError, ValueError) as e:
        raise EvalInputError(f"cannot load {s.model} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    lm.display_name = s.model
    lm.cache = eb.RequestCache(cache_path) if cache_path else None  # the api client opens its own
    lm.cache_identity = {"model": s.model, "model_args": args, "backend": s.backend}
    line = getattr(lm, "warn_checkpoint_generation", lambda: None)()
    if line:
        print(f"tgpo eval: {line}", file=sys.stderr)
    return lm


# --------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------


def evaluate(model: str, tasks: str | Sequence[str] = "tgpo_paper", *, backend: str = "hf", **options: Any) -> EvalResult:
    """Score ``model`` on ``tasks`` with the paper's protocol and write the report (docs/method.md §4).

    ``options`` are the fields of :class:`~tgpo.eval.settings.EvalSettings` (``output_dir``, ``limit``,
    ``num_samples``, ``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``, ``min_p``, ``repetition_penalty``,
    ``presence_penalty``, ``frequency_penalty``, ``stop``, ``chat_template``, ``seed``, ``model_args``, ``base_url``,
    ...). Raises :class:`~tgpo.eval.settings.EvalInputError` for bad input (before any model loads where possible),
    :class:`EvalInterrupted` on Ctrl-C; ``ContextTooLong`` / ``ServerRefused`` (:mod:`tgpo.eval.backends`) when the
    model cannot run the protocol; ``OSError`` when the outputs cannot be written (the answers stay cached).

        >>> result = evaluate("tgpo/lab/zoo/student", "tgpo_lab_id", limit=20)  # doctest: +SKIP
        >>> result.scores.set_index("task")["pass@1"]  # doctest: +SKIP
    """
    try:
        settings = EvalSettings(model=model, tasks=tasks, backend=backend, **options)
    except TypeError as e:
        raise EvalInputError(str(e).replace("EvalSettings.__init__()", "evaluate()")) from None
    return run(settings)


def run(s: EvalSettings) -> EvalResult:
    """:func:`evaluate` with its settings gathered."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    check_settings(s)
    limit = check_limit(s.limit)
    out_dir = Path(s.output_dir or Path("results") / "eval" / model_slug(s.model))
    check_output_dir(out_dir)
    model_args = kv(s.model_args, "--model-args")
    refuse_overlap(out_dir, {"model": s.model, "tokenizer": model_args.get("tokenizer"),
                             "benchmark folder": os.environ.get("TGPO_BENCHMARK_DIR")})
    include_path = Path(s.include_path) if s.include_path else tasks_dir()  # a given one is checked in check_settings
    names = s.task_names()
    chat, think = inspect_tokenizer(s, model_args)
    tm, task_objects, gen_settings, protocol, repeats = load_tasks(
        include_path, names, s.num_samples, {"prompt_ends_in_think": think}, s.overrides()
    )
    if not chat and s.chat_template is None:  # said once the tasks are known good: a refusal stays one line
        print(f"tgpo eval: {model_args.get('tokenizer') or s.model} has no chat template: the system prompt and "
              "problem go in as plain text", file=sys.stderr)
    loggers = _loggers(s, out_dir)
    from tgpo.eval import backends as eb

    out_dir.mkdir(parents=True, exist_ok=True)
    if s.use_cache and eb.cache_is_complete(out_dir / REQUEST_CACHE):
        from tgpo.outputs import archive_existing

        archive_existing(out_dir, [REQUEST_CACHE])  # answers of a finished run: start afresh, keep them aside

    from lm_eval import simple_evaluate

    from tgpo import grading

    grading.warmup()
    lm = build_model(s, out_dir, model_args)
    cache = getattr(lm, "cache", None)
    started = _dt.datetime.now(_dt.timezone.utc)
    try:
        results = simple_evaluate(
            model=lm, tasks=task_objects, limit=limit, task_manager=tm, apply_chat_template=chat,
            log_samples=True, evaluation_tracker=loggers.get("tracker"), random_seed=s.seed,
            numpy_random_seed=s.seed, torch_random_seed=s.seed, fewshot_random_seed=s.seed,
        )
        if results is None:  # non-zero rank in a distributed run
            return EvalResult(None, out_dir, [], 0, {})
        missing = dict(getattr(lm, "missing", {}) or {})
        rows = summarise(results, missing)
        run_info = {
            "settings": s, "lm": lm, "model_args": model_args, "started": started, "think": think, "chat": chat,
            "missing": missing, "generation": gen_settings, "protocol": protocol, "repeats": repeats, "limit": limit,
        }
        paths, manifest = write_outputs(out_dir, results, rows, run_info)
        if cache is not None and not missing:
            cache.mark_complete()  # only now: outputs and manifest exist
    except KeyboardInterrupt:
        kept = len(cache) if cache is not None else 0
        raise EvalInterrupted(f"interrupted; {kept} answers kept in {out_dir / REQUEST_CACHE}: rerun the same "
                              "command to generate only the rest") from None
    finally:
        if cache is not None:
            cache.close()
    _log(loggers, results)
    print(render_summary(rows))
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    import pandas as pd

    scores = pd.DataFrame(rows, columns=list(rows[0]) if rows else None)
    if missing:
        tasks = ", ".join(f"{t} ({n})" for t, n in sorted(missing.items()))
        print(f"tgpo eval: incomplete: samples without a usable answer after {s.max_retries} retries: {tasks}; "
              "rerun the same command to request only those", file=sys.stderr)
    return EvalResult(scores, out_dir, paths, 1 if missing else 0, manifest)


def _loggers(s: EvalSettings, out_dir: Path) -> dict[str, Any]:
    """lm-eval's own loggers, as ``lm_eval --wandb_args/--hf_hub_log_args`` sets them up: ``WandbLogger`` and an
    ``EvaluationTracker`` (which saves lm-eval's results files under ``out_dir/lm_eval`` and pushes to the Hub when
    its arguments say so)."""
    out: dict[str, Any] = {}
    wandb_args = kv(s.wandb_args, "--wandb_args")
    if wandb_args:
        from lm_eval.loggers import WandbLogger

        out["wandb"] = WandbLogger(wandb_args, kv(s.wandb_config_args, "--wandb_config_args"))
    hub_args = kv(s.hf_hub_log_args, "--hf_hub_log_args")
    if hub_args:
        from lm_eval.loggers import EvaluationTracker

        hub_args.setdefault("output_path", str(out_dir / "lm_eval"))
        if os.environ.get("HF_TOKEN"):
            hub_args.setdefault("token", os.environ["HF_TOKEN"])
        try:
            out["tracker"] = EvaluationTracker(**hub_args)
        except TypeError as e:
            raise EvalInputError(f"--hf_hub_log_args: {e}") from None
    return out


def _log(loggers: Mapping[str, Any], results: Mapping[str, Any]) -> None:
    """Hand the results to lm-eval's loggers. A logger that fails is one line: the eval's own files are written."""
    samples = results.get("samples") or {}
    if "wandb" in loggers:
        wandb = loggers["wandb"]
        try:
            wandb.post_init(dict(results))
            wandb.log_eval_result()
            wandb.log_eval_samples(samples)
            wandb.run.finish()
        except Exception as e:  # noqa: BLE001 - as lm-eval's own CLI: logging never loses the results
            print(f"tgpo eval: logging to W&B failed ({type(e).__name__}: {e})", file=sys.stderr)
    if "tracker" in loggers:
        tracker = loggers["tracker"]
        tracker.save_results_aggregated(results=dict(results), samples=samples)
        for task_name in results.get("configs", {}):
            if task_name in samples:
                tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
        if tracker.push_results_to_hub or tracker.push_samples_to_hub:
            tracker.recreate_metadata_card()
