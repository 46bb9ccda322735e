"""``tgpo eval``'s command line: its arguments (lm-eval's spellings accepted beside ours) and the sub-command entry
point, which calls :func:`tgpo.eval.evaluate` like any other caller. Defaults live in
:class:`~tgpo.eval.settings.EvalSettings`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tgpo.eval.report import REQUEST_CACHE
from tgpo.eval.settings import BACKENDS, EvalInputError, EvalSettings, check_include_path

DEFAULTS = EvalSettings(model="")

EPILOG = """\
examples:
  # a public checkpoint on a GPU, the full paper protocol (avg@32 on AIME24/25 and AMC):
  tgpo eval --model Elliott/LUFFY-Qwen-Math-7B-Zero --backend vllm --max-model-len 16384
  # any OpenAI-compatible server (vllm serve, sglang, a hosted API):
  tgpo eval --model my-model --backend api --base-url http://localhost:8000/v1/chat/completions
  # a quick look: 20 problems per benchmark, 4 samples each, shorter outputs:
  tgpo eval --model Qwen/Qwen2.5-Math-1.5B --backend hf --tasks tgpo_math --limit 20 --num-samples 4 \\
      --max-new-tokens 2048
  # a lab model (no chat template: the plain prompt is used, said in one line):
  tgpo eval --model tgpo/lab/zoo/student --tasks tgpo_lab_id --limit 20

Benchmarks come from <benchmark>.jsonl files ({"id", "problem", "answer"} rows) in TGPO_BENCHMARK_DIR when it
is set and the file is there, else from the Hugging Face Hub. Tasks (comma-separated; tgpo eval --list-tasks):
tgpo_paper (all nine), tgpo_math, tgpo_ood, or any of tgpo_math500, tgpo_aime24, tgpo_aime25, tgpo_amc,
tgpo_minerva_math, tgpo_olympiadbench, tgpo_gpqa_diamond, tgpo_mmlu_pro, tgpo_arc_challenge; the CPU lab's
tgpo_lab (tgpo_lab_id, tgpo_lab_hard, tgpo_lab_ood).
Every sampling setting is sent explicitly on every backend (a checkpoint's generation_config.json or a server's
defaults never change one); the manifest records them per task, and summary.md flags every departure from the
paper's protocol. Answers are cached per sample in <output-dir>/request_cache.sqlite on every backend: rerunning
an interrupted or incomplete run generates only what is missing.
Exit status: 0 complete, 1 incomplete (samples without an answer: rerun to fill them in), 2 bad input or a
fault (one line), 130 interrupted (answers so far kept).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    add = parser.add_argument
    add("--model", help="Hub id or local path (hf/vllm); model name sent to the server (api).")
    add("--list-tasks", action="store_true", help="list the tasks and groups, then exit (lm-eval's `ls tasks`).")
    add("--backend", choices=BACKENDS, default=d.backend,
        help="hf: transformers generate (CPU or GPU); vllm: vLLM offline engine; api: an OpenAI-compatible "
        "chat-completions endpoint given by --base-url (default: %(default)s).")
    add("--base-url", help="chat-completions URL for --backend api, e.g. http://localhost:8000/v1/chat/completions "
        "(a bare http://host:port/v1 gets /chat/completions appended). Key: $OPENAI_API_KEY if needed.")
    add("--tasks", default=d.tasks, help="comma-separated tasks or groups (default: %(default)s).")
    add("--limit", type=float, help="problems per task (an integer), or a fraction below 1; default: all.")
    add("--num-samples", type=int,
        help="samples per problem for every task (default: the paper's: 32 for AIME24/AIME25/AMC, 1 elsewhere).")
    g = parser.add_argument_group("the sampling protocol (default: each task's, as the paper ran it)")
    g.add_argument("--max-new-tokens", type=int, help="generation budget per sample (the paper's: 8192).")
    g.add_argument("--temperature", type=float, help="sampling temperature (the paper's: 0.6; 0: greedy).")
    g.add_argument("--top-p", type=float, help="nucleus sampling (the paper's: 1.0).")
    g.add_argument("--top-k", type=int, help="top-k sampling, 0 for off (the paper's: off).")
    g.add_argument("--min-p", type=float, help="min-p sampling (the paper's: 0, off).")
    g.add_argument("--repetition-penalty", type=float, help="(the paper's: 1.0, none).")
    g.add_argument("--presence-penalty", type=float, help="vllm/api only (the paper's: 0).")
    g.add_argument("--frequency-penalty", type=float, help="vllm/api only (the paper's: 0).")
    g.add_argument("--stop", action="append", help="a stop string (repeatable; default: the task's).")
    g.add_argument("--gen-kwargs", "--gen_kwargs", default="",
                   help="extra generation settings, k=v,k=v, lm-eval's names (applied last).")
    g.add_argument("--no-chat-template", dest="chat_template", action="store_false", default=None,
                   help="feed the system prompt and problem as plain text (default: the model's chat template, or "
                   "plain text when it has none; not for api).")
    g.add_argument("--seed", type=int, default=d.seed, help="run seed (python/numpy/torch) (default: %(default)s).")
    add("--max-model-len", type=int,
        help="context length to run the model with (vllm: max_model_len; hf: lm-eval's max_length); default: "
        "the model's own. Prompt plus --max-new-tokens must fit it: prompts are never truncated.")
    add("--output-dir", "--output_path", dest="output_dir", type=Path,
        help="where results go (default: results/eval/<model-slug>/).")
    add("--include-path", "--include_path", dest="include_path", type=Path, default=None,
        help="folder of task YAMLs (default: the tasks installed with tgpo).")
    add("--batch-size", "--batch_size", dest="batch_size", default=None,
        help="lm-eval batch size (default: 8 for hf, auto for vllm; api: one request per sample).")
    add("--model-args", "--model_args", dest="model_args", default="",
        help="extra lm-eval model arguments, k=v,k=v (e.g. dtype=bfloat16,gpu_memory_utilization=0.8).")
    add("--log-samples", "--log_samples", action="store_true",
        help="accepted for lm-eval users: samples_<task>.jsonl is always written (the per-problem values need it).")
    add("--device", default=None, help="hf device (default: cuda if available, else cpu).")
    a = parser.add_argument_group("api backend")
    a.add_argument("--num-concurrent", type=int, default=d.num_concurrent, help="parallel requests (default: %(default)s).")
    a.add_argument("--max-retries", type=int, default=d.max_retries, help="retries of a failed request (default: %(default)s).")
    a.add_argument("--retry-wait", type=float, default=d.retry_wait,
                   help="seconds before the first retry, doubling for each next one up to 60; a server's Retry-After "
                   "wins (default: %(default)s).")
    a.add_argument("--request-timeout", type=int, default=d.request_timeout, help="seconds per request (default: %(default)s).")
    a.add_argument("--prompt-ends-in-think", action="store_true",
                   help="the server's chat template ends the prompt with '<think>\\n' (the authors' grade then splits "
                   "the response at </think>); hf/vllm find this out from the tokenizer.")
    add("--no-cache", action="store_true", help=f"do not read or write {REQUEST_CACHE} in the output folder.")
    lg = parser.add_argument_group("lm-eval's loggers")
    lg.add_argument("--wandb_args", "--wandb-args", dest="wandb_args", default="",
                    help="k=v arguments of wandb.init (project=...,name=...): log the eval with lm-eval's WandbLogger.")
    lg.add_argument("--wandb_config_args", "--wandb-config-args", dest="wandb_config_args", default="",
                    help="k=v added to the W&B run's config.")
    lg.add_argument("--hf_hub_log_args", "--hf-hub-log-args", dest="hf_hub_log_args", default="",
                    help="k=v arguments of lm-eval's EvaluationTracker (hub_results_org=...,push_results_to_hub=True); "
                    "its files go to <output-dir>/lm_eval.")


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    """The parsed command line as :class:`EvalSettings` (one field per option, same names)."""
    fields = {f for f in EvalSettings.__dataclass_fields__}
    given = {k: v for k, v in vars(args).items() if k in fields}
    given["use_cache"] = not args.no_cache
    given["command"] = list(sys.argv)
    return EvalSettings(**given)


def run(args: argparse.Namespace) -> int:
    """``tgpo eval``: the exit status (0 complete, 1 incomplete, 2 bad input or a fault, 130 interrupted)."""
    from tgpo.eval.run import list_tasks

    if args.list_tasks:
        try:
            check_include_path(args.include_path)
        except EvalInputError as e:
            print(f"tgpo eval: {e}", file=sys.stderr)
            return 2
        print(list_tasks(args.include_path))
        return 0
    try:
        from tgpo.eval.backends import CacheUnusable, ContextTooLong, ServerRefused
        from tgpo.eval.run import EvalInterrupted
        from tgpo.eval.run import run as run_eval

        return run_eval(settings_from_args(args)).status
    except (EvalInputError, ContextTooLong, ServerRefused, CacheUnusable) as e:
        print(f"tgpo eval: {e}", file=sys.stderr)
        return 2
    except EvalInterrupted as e:
        print(f"tgpo eval: {e}", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk, a folder gone: the answers so far stay in the request cache
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"tgpo eval: cannot write the outputs{where}: {e.strerror or e}; the answers so far are kept in "
              f"{REQUEST_CACHE}: free the space and rerun the same command", file=sys.stderr)
        return 2
