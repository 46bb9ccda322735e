"""Memory and time probes of the bench (``python -m bench.trainer``), the GPU check (``repro/launch/gpu_check.py``)
and tests/test_memory.py: torch's CPU allocations inside a block, the teacher pass and one decoder layer.

Not part of the installed library (``tgpo/testing.py`` keeps only what builds tiny models)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from tgpo.testing import build_model, build_tokenizer

__all__ = ["AllocationStats", "in_fresh_process", "layer_probe", "teacher_pass_probe", "track_allocations"]


@dataclass
class AllocationStats:
    """Filled when :func:`track_allocations`' block ends: ``peak_bytes`` (most bytes live at once, counted from the
    block's start, so tensors freed but allocated before it can only lower it) and ``largest_bytes`` (the largest
    single allocation, intermediate buffers inside an operator included)."""

    peak_bytes: int = 0
    largest_bytes: int = 0
    allocations: int = 0


@contextlib.contextmanager
def track_allocations():
    """Record every allocation and free of torch's CPU allocator inside the block (``torch.profiler`` with
    ``profile_memory=True``) and replay them in time order.

    Unlike RSS this is exact and deterministic, and it sees the temporaries that operators allocate internally
    (``logsumexp``'s ``exp`` buffer, the fused head's tiles), which a ``TorchDispatchMode`` does not. It does not see
    memory that bypasses torch's allocator (Python objects, the tokenizer). CPU tensors only.
    """
    from torch.profiler import ProfilerActivity, profile

    stats = AllocationStats()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        yield stats
    # The ordered allocation stream is only on the raw Kineto events; the FunctionEvent view nets each op's
    # allocations and frees, which hides a temporary allocated and freed inside one op.
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = 0
    for e in events:
        n = e.nbytes()
        live += n
        stats.peak_bytes = max(stats.peak_bytes, live)
        if n > 0:
            stats.largest_bytes = max(stats.largest_bytes, n)
            stats.allocations += 1


def in_fresh_process(fn, /, **kwargs):
    """``fn(**kwargs)`` in a new Python process (multiprocessing's spawn), so its memory is measured from a clean
    baseline and freed afterwards; ``fn`` must be importable (a module-level function). A child that dies raises
    ``BrokenProcessPool`` here rather than being restarted."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, **kwargs).result()


def _rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def teacher_pass_probe(*, rows: int, prompt_len: int, completion_len: int, vocab_size: int, hidden: int,
                       layers: int = 2, variants: Sequence[tuple[int | None, int | None]] = ((None, None),),
                       dtype: str = "float32", device: str = "cpu", repeats: int = 1, padded: bool = True,
                       measure_memory: bool = True, threads: int = 1) -> list[dict]:
    """Time and measure :func:`tgpo.teacher.teacher_scores` of a tiny Qwen2 teacher on random full-length rows.

    ``variants``: ``(chunk_size, chunk_tokens)`` pairs, timed round-robin (``repeats`` rounds after a short
    warm-up), so that load from other processes falls on every variant alike. ``padded``: one left-pad token per
    prompt, so transformers builds SDPA's attention mask as a real batch needs. One dict per variant:
    ``seconds`` (the fastest round: the least disturbed) and ``seconds_median``; with ``measure_memory``,
    ``peak_bytes`` (CPU: torch's allocations, :func:`track_allocations`; CUDA: ``max_memory_allocated`` over the
    baseline), ``formula_bytes`` (:func:`tgpo.teacher.teacher_pass_peak_bytes` for one row chunk) and on CPU
    ``rss_peak_bytes`` (the process's peak RSS over its baseline: meaningful for one variant in a fresh process).
    """
    import resource
    import statistics
    import time

    import torch

    from tgpo.teacher import decoder_layer_width, teacher_pass_peak_bytes, teacher_scores

    torch.set_num_threads(threads)
    tok = build_tokenizer()
    P, T = prompt_len, completion_len
    model = build_model(tok, hidden=hidden, layers=layers, vocab_size=vocab_size, max_positions=P + T)
    model = model.to(device=device, dtype=getattr(torch, dtype)).eval()
    g = torch.Generator().manual_seed(0)
    prompt_mask = torch.ones(rows, P, dtype=torch.long)
    if padded:
        prompt_mask[:, 0] = 0
    batch = [t.to(device) for t in (torch.randint(4, len(tok), (rows, P), generator=g), prompt_mask,
                                    torch.randint(4, len(tok), (rows, T), generator=g),
                                    torch.ones(rows, T, dtype=torch.long))]
    cuda = device.startswith("cuda")

    def run(chunk_size, chunk_tokens):
        teacher_scores(model, *batch, len(tok), chunk_size, chunk_tokens)
        if cuda:
            torch.cuda.synchronize()

    teacher_scores(model, *(b[:, :4] for b in batch), len(tok), None, 2)  # kernels and caches warmed up
    rss0 = _rss_bytes()
    times = [[] for _ in variants]
    for _ in range(repeats):
        for i, v in enumerate(variants):
            t0 = time.perf_counter()
            run(*v)
            times[i].append(time.perf_counter() - t0)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    out = []
    for (chunk_size, chunk_tokens), ts in zip(variants, times):
        r = {"chunk_size": chunk_size, "chunk_tokens": chunk_tokens, "seconds": min(ts),
             "seconds_median": statistics.median(ts)}
        if measure_memory:
            if cuda:
                torch.cuda.empty_cache()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                run(chunk_size, chunk_tokens)
                r["peak_bytes"] = torch.cuda.max_memory_allocated() - base
            else:
                r["rss_peak_bytes"] = rss_peak
                with track_allocations() as stats:
                    run(chunk_size, chunk_tokens)
                r["peak_bytes"] = stats.peak_bytes
            r["formula_bytes"] = teacher_pass_peak_bytes(
                min(chunk_size or rows, rows), T, vocab_size, hidden, chunk_tokens, prompt_len=P, padded=padded,
                layer_width=decoder_layer_width(model.config.to_dict()), dtype_bytes=torch.finfo(model.dtype).bits // 8)
        out.append(r)
    return out


def layer_probe(config: dict, positions: int = 512, dtype: str = "bfloat16", device: str = "cpu") -> dict:
    """Peak activation bytes per position of one decoder layer (no head) of a ``config`` (a transformers config
    dict with ``model_type``), beside :func:`tgpo.teacher.decoder_layer_width`'s estimate — for the layer of a
    model too big to build whole (Qwen3-30B-A3B: one layer is 1.2 GB in bf16)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tgpo.teacher import decoder_layer_width

    torch.set_num_threads(1)
    cfg = AutoConfig.for_model(**{**config, "num_hidden_layers": 1, "vocab_size": 256})
    with torch.device("meta"):  # transformers' initialisation of 1.2 GB of experts takes half a minute on a core
        model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
    model = model.to_empty(device=device).eval()
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=g)  # routing and attention need finite weights, not trained ones
    rotary = model.base_model.rotary_emb  # its frequencies are buffers that to_empty left uninitialised
    model.base_model.rotary_emb = type(rotary)(config=model.config).to(device)
    ids = torch.randint(0, 256, (1, positions), device=device)
    with torch.no_grad():
        model.base_model(input_ids=ids[:, :8], use_cache=False)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            model.base_model(input_ids=ids, use_cache=False)
            peak = torch.cuda.max_memory_allocated() - base
        else:
            with track_allocations() as stats:
                model.base_model(input_ids=ids, use_cache=False)
            peak = stats.peak_bytes
    bytes_per = torch.finfo(model.dtype).bits // 8
    return {"measured_bytes_per_position": peak / positions,
            "formula_bytes_per_position": decoder_layer_width(cfg.to_dict()) * bytes_per}
