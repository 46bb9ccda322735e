"""Checks of ``tgpo eval``'s input that need no model: limits, folders, ``k=v`` lists, names (bad input: one line,
exit status 2, before any model loads)."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


BACKENDS = ("hf", "vllm", "api")


@dataclass
class EvalSettings:
    """Everything one evaluation is run with: the single home of every default (``tgpo eval``'s options and
    :func:`tgpo.eval.evaluate`'s keyword arguments are these fields). The sampling fields left ``None`` take the
    task YAML's value, else the neutral one (:mod:`tgpo.eval.protocol`)."""

    model: str
    tasks: str | Sequence[str] = "tgpo_paper"
    backend: str = "hf"
    output_dir: str | Path | None = None  # default: results/eval/<model-slug>/
    limit: float | None = None
    num_samples: int | None = None
    # the protocol: None = the task's own setting
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: Sequence[str] | None = None
    gen_kwargs: str | Mapping[str, Any] = ""
    chat_template: bool | None = None  # None: the model's, or the plain prompt if it has none (said in one line)
    seed: int = 0
    # the model
    model_args: str | Mapping[str, Any] = ""
    max_model_len: int | None = None
    device: str | None = None
    batch_size: int | str | None = None
    include_path: str | Path | None = None
    # api
    base_url: str | None = None
    num_concurrent: int = 8
    max_retries: int = 5
    retry_wait: float = 1.0
    request_timeout: int = 600
    prompt_ends_in_think: bool = False
    use_cache: bool = True
    # lm-eval's loggers
    wandb_args: str | Mapping[str, Any] = ""
    wandb_config_args: str | Mapping[str, Any] = ""
    hf_hub_log_args: str | Mapping[str, Any] = ""
    command: Sequence[str] | None = field(default=None, repr=False)  # the argv, for the manifest

    def overrides(self) -> dict[str, Any]:
        """The user's generation settings by lm-eval name (``--gen-kwargs`` last)."""
        from tgpo.eval.protocol import OVERRIDES

        out = {OVERRIDES[k]: getattr(self, k) for k in OVERRIDES if getattr(self, k) is not None}
        if "until" in out:
            out["until"] = list(out["until"])
        return out | kv(self.gen_kwargs, "--gen-kwargs")

    def task_names(self) -> list[str]:
        names = self.tasks.split(",") if isinstance(self.tasks, str) else list(self.tasks)
        names = [t.strip() for t in names if t and t.strip()]
        if not names:
            raise EvalInputError("--tasks is empty")
        return names


def kv(value: str | Mapping[str, Any] | None, flag: str) -> dict[str, Any]:
    """A ``k=v,k=v`` option as a dict (a dict passes through)."""
    return dict(value) if isinstance(value, Mapping) else parse_kv(value or "", flag)


def check_settings(s: EvalSettings) -> None:
    """Everything about ``s`` that can be checked before any model or data loads (one-line :class:`EvalInputError`)."""
    if not s.model:
        raise EvalInputError("--model is required (a Hub id or local path; the served model name for --backend api)")
    if s.backend not in BACKENDS:
        raise EvalInputError(f"--backend must be one of {', '.join(BACKENDS)}, got {s.backend!r}")
    if s.num_samples is not None and s.num_samples < 1:
        raise EvalInputError(f"--num-samples must be at least 1, got {s.num_samples}")
    if s.max_new_tokens is not None and s.max_new_tokens < 1:
        raise EvalInputError(f"--max-new-tokens must be at least 1, got {s.max_new_tokens}")
    if s.max_model_len is not None and s.max_model_len < 2:
        raise EvalInputError(f"--max-model-len must be at least 2, got {s.max_model_len}")
    for name, low in (("temperature", 0.0), ("min_p", 0.0), ("repetition_penalty", 1e-9)):
        value = getattr(s, name)
        if value is not None and not value >= low:
            raise EvalInputError(f"--{name.replace('_', '-')} must be at least {low:g}, got {value}")
    if s.min_p is not None and s.min_p > 1:
        raise EvalInputError(f"--min-p must be at most 1 (a share of the top token's probability), got {s.min_p}")
    if s.top_p is not None and not 0 < s.top_p <= 1:
        raise EvalInputError(f"--top-p must be in (0, 1], got {s.top_p}")
    if s.top_k is not None and s.top_k < 0:
        raise EvalInputError(f"--top-k must be 0 (off) or more, got {s.top_k}")
    if s.backend == "hf" and any(getattr(s, p) for p in ("presence_penalty", "frequency_penalty")):
        raise EvalInputError("--presence-penalty and --frequency-penalty need --backend vllm or api "
                             "(transformers has no such penalty)")
    for flag, value, low in (("--max-retries", s.max_retries, 0), ("--retry-wait", s.retry_wait, 0),
                             ("--request-timeout", s.request_timeout, 1), ("--num-concurrent", s.num_concurrent, 1)):
        if not value >= low:
            raise EvalInputError(f"{flag} must be at least {low}, got {value}")
    check_batch_size(s.batch_size)
    check_include_path(s.include_path)
    if s.backend == "api" and not s.base_url:
        raise EvalInputError("--backend api needs --base-url")
    if s.backend == "api" and s.chat_template is False:
        raise EvalInputError("--backend api needs the chat format (drop --no-chat-template)")
    s.overrides()  # --gen-kwargs parses
    kv(s.model_args, "--model-args")
    for flag, value in (("--wandb_args", s.wandb_args), ("--wandb_config_args", s.wandb_config_args),
                        ("--hf_hub_log_args", s.hf_hub_log_args)):
        kv(value, flag)


def check_include_path(path: str | Path | None) -> None:
    """``--include-path``, when given, must be a folder (lm-eval would find no tasks in it and say nothing)."""
    if path is not None and not Path(path).is_dir():
        raise EvalInputError(f"--include-path {path}: not a folder of task YAMLs")


def check_batch_size(value: int | str | None) -> None:
    """lm-eval's batch sizes: a whole number >= 1, ``auto``, or ``auto:N`` (N re-detections); one-line
    :class:`EvalInputError` otherwise, before the model loads (lm-eval would fail on it only after)."""
    text = str(value).strip() if value is not None else None
    if text is None or text == "auto":
        return
    number = text.removeprefix("auto:")
    if not (number.isdigit() and int(number) >= 1):
        raise EvalInputError(f"--batch-size must be a whole number >= 1, auto or auto:N, got {value!r}")


def refuse_overlap(out_dir: Path, inputs: Mapping[str, str | Path | None], flag: str = "--output-dir") -> None:
    """:class:`EvalInputError` when ``out_dir`` is, or contains, one of the run's local inputs
    (:func:`tgpo.outputs.overlapping_input`), before anything moves."""
    from tgpo.outputs import overlapping_input

    message = overlapping_input(out_dir, inputs, flag)
    if message:
        raise EvalInputError(message)
