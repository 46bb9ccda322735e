"""``tgpo eval``'s command line: its arguments and the sub-command entry point (the run itself: :mod:`tgpo.eval.run`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tgpo.eval.report import REQUEST_CACHE
from tgpo.eval.settings import EvalInputError

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



def run(args: argparse.Namespace) -> int:
    from tgpo.eval.run import run_from_args

    try:
        return run_from_args(args)
    except EvalInputError as e:
        print(f"tgpo eval: {e}", file=sys.stderr)
        return 2
