"""Checks of ``tgpo eval``'s input that need no model: limits, folders, ``k=v`` lists, names (bad input: one line,
exit status 2, before any model loads)."""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path
from typing import Any


class EvalInputError(Exception):
    """Bad input, reported as one line with exit status 2."""


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
