"""The sampling protocol: every generation setting of every task explicit, on every backend (docs/method.md §4).

A checkpoint's ``generation_config.json`` (hf), vLLM's defaults taken from it (vllm), and a server's defaults for a
field a request leaves out (api) must never change what is sampled. So each task's settings are resolved here once,
every field set: the task YAML's ``generation_kwargs``, then the user's overrides, then the neutral value of every
field neither names (:data:`NEUTRAL`). The backends pass all of them (:func:`hf_generate_kwargs`,
:func:`vllm_sampling_kwargs`, :func:`api_fields`), the manifest records them, and :func:`deviations` compares a run
with the paper's protocol for ``summary.md``.

Settings use lm-eval's names: ``max_gen_toks`` (new tokens), ``until`` (stop strings), ``do_sample``, ``temperature``,
``top_p``, ``top_k`` (0: off), ``min_p``, ``repetition_penalty``, ``presence_penalty``, ``frequency_penalty``, and
``seed`` (per request; ``None``: each repeat is an independent sample, the run seed seeds the sampler once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Values that change nothing, for the fields a task YAML does not name.
NEUTRAL: dict[str, Any] = {
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "until": [],
    "seed": None,
}
#: Every setting a task's generation has after :func:`effective_settings`, in the manifest's order.
FIELDS = ("do_sample", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
          "frequency_penalty", "max_gen_toks", "until", "seed")
#: Sampling fields that greedy decoding ignores.
SAMPLING_ONLY = ("temperature", "top_p", "top_k", "min_p")
#: The user's overrides: option name -> setting (``--max-new-tokens`` is ``max_gen_toks``).
OVERRIDES = {"max_new_tokens": "max_gen_toks", "temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
             "min_p": "min_p", "repetition_penalty": "repetition_penalty", "presence_penalty": "presence_penalty",
             "frequency_penalty": "frequency_penalty", "stop": "until"}
#: The paper's protocol where it is not in the task YAMLs (docs/method.md §4): the backend and the chat template.
PAPER_BACKEND = "vllm"


def effective_settings(task_kwargs: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """One task's generation settings, every field of :data:`FIELDS` set (``seed`` ``None`` is a policy, see the
    module docstring). ``task_kwargs``: the task YAML's ``generation_kwargs``; ``overrides``: settings by lm-eval
    name (``--gen-kwargs`` and the sampling options), applied last. ``do_sample`` false means greedy: temperature 0."""
    s = {**NEUTRAL, **dict(task_kwargs), **dict(overrides)}
    for alias in ("max_new_tokens", "max_tokens", "max_completion_tokens"):
        if alias in s:
            s.setdefault("max_gen_toks", s.pop(alias))
    s.setdefault("max_gen_toks", 256)  # lm-eval's own default; every shipped task names its budget
    s.setdefault("temperature", 0.0)
    if "do_sample" not in s or "temperature" in overrides and "do_sample" not in overrides:
        s["do_sample"] = float(s["temperature"]) > 0
    if not s["do_sample"]:
        s["temperature"] = 0.0
    until = s["until"]
    s["until"] = [until] if isinstance(until, str) else list(until or [])
    s["max_gen_toks"] = int(s["max_gen_toks"])
    s["top_k"] = int(s["top_k"]) if s["top_k"] not in (None, -1) else 0
    for name in ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty"):
        s[name] = float(s[name])
    return {k: s[k] for k in FIELDS} | {k: v for k, v in s.items() if k not in FIELDS}


def hf_generate_kwargs(settings: Mapping[str, Any], max_new_tokens: int) -> dict[str, Any]:
    """Arguments for transformers' ``generate``: the budget as ``max_new_tokens`` and every sampling field (greedy:
    ``do_sample=False`` alone). Presence and frequency penalties have no transformers equivalent and must be 0."""
    kw: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "do_sample": bool(settings["do_sample"]),
                          "repetition_penalty": float(settings["repetition_penalty"])}
    if kw["do_sample"]:
        kw |= {"temperature": float(settings["temperature"]), "top_p": float(settings["top_p"]),
               "top_k": int(settings["top_k"]), "min_p": float(settings["min_p"]) or None}
        if kw["min_p"] is None:
            del kw["min_p"]  # min_p 0 is transformers' "off" only as None
    return kw


def vllm_sampling_kwargs(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``vllm.SamplingParams`` arguments, every field set (vLLM's "off" for top-k is -1)."""
    greedy = not settings["do_sample"]
    return {
        "max_tokens": int(settings["max_gen_toks"]),
        "stop": list(settings["until"]),
        "temperature": 0.0 if greedy else float(settings["temperature"]),
        "top_p": 1.0 if greedy else float(settings["top_p"]),
        "top_k": -1 if greedy or not settings["top_k"] else int(settings["top_k"]),
        "min_p": 0.0 if greedy else float(settings["min_p"]),
        "repetition_penalty": float(settings["repetition_penalty"]),
        "presence_penalty": float(settings["presence_penalty"]),
        "frequency_penalty": float(settings["frequency_penalty"]),
        "seed": settings.get("seed"),
        "skip_special_tokens": False,  # lm-eval's own choice for vLLM, kept
        "spaces_between_special_tokens": False,
    }


def api_fields(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Chat-completions body fields: OpenAI's names, vLLM's extensions (``top_k``, ``min_p``,
    ``repetition_penalty``) included, so a server's generation-config defaults never fill a field in."""
    fields = vllm_sampling_kwargs(settings)
    for local in ("skip_special_tokens", "spaces_between_special_tokens"):
        fields.pop(local)
    fields["stop"] = fields["stop"][:4]  # OpenAI accepts at most four
    return fields


def deviations(
    *, limit: Any, backend: str, chat_template: bool, settings: Mapping[str, Mapping[str, Any]],
    repeats: Mapping[str, tuple[int, int]], paper: Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, bool]]:
    """How a run departs from the paper's protocol: ``(what, affects the reported numbers)`` pairs.

    ``settings``: each task's effective settings; ``paper``: each task's settings under the shipped YAML alone (the
    protocol); ``repeats``: task -> (samples per problem used, the YAML's). The backend is flagged but does not by
    itself make numbers incomparable (the same settings sample the same distribution)."""
    out: list[tuple[str, bool]] = []
    if limit is not None:
        out.append((f"limit {limit} problems per task", True))
    changed = sorted({f"{t}: {used} samples per problem (protocol: {proto})"
                      for t, (used, proto) in repeats.items() if used != proto})
    if changed:
        out.append(("; ".join(changed), True))
    if not chat_template:
        out.append(("chat template off", True))
    for field, label in (("max_gen_toks", "budget"), ("temperature", "temperature"), ("top_p", "top-p"),
                         ("top_k", "top-k"), ("min_p", "min-p"), ("repetition_penalty", "repetition penalty"),
                         ("presence_penalty", "presence penalty"), ("frequency_penalty", "frequency penalty"),
                         ("until", "stop strings")):
        diffs = sorted({f"{s[field]} (protocol: {paper[t][field]})" for t, s in settings.items()
                        if t in paper and s[field] != paper[t][field]})
        if diffs:
            out.append((f"{label} " + ", ".join(diffs), True))
    if backend != PAPER_BACKEND:
        out.append((f"backend {backend} (the authors': {PAPER_BACKEND})", False))
    return out
