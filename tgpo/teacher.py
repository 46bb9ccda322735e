"""Running a teacher over student rollouts, behind one small interface (docs/method.md §1–2).

A teacher answers one question about a batch of student rollouts: at every completion position, what is the
teacher's next token on the student's own prefix (``yT``, its argmax restricted to ids the student can emit), and
what log-prob does the teacher give the token the student actually sampled (``lp_T``)? Every implementation
returns ``(argmax_ids, sampled_logp)``, both ``[B, T]``, from :meth:`Teacher.score`.

* :class:`LocalTeacher` — a ``transformers`` model in this process, run without gradient: its body in row chunks,
  its LM head in tiles of positions, so neither the batch's nor one row's logits (``T x V``) are ever held at once
  (:func:`teacher_scores`; memory: :func:`teacher_pass_peak_bytes`).
* :class:`ServedTeacher` — a teacher behind ``vllm serve`` (its own GPUs, or another node), scored with TRL's
  ``VLLMClient.get_sequence_logprobs(..., top_logprobs=k)``: the completion's prompt log-probs, top-1 = the argmax,
  plus the sampled token's log-prob, which vLLM always returns next to the top-k.

Also here: :func:`load_tokenizer` (loads custom ``tokenizers``-backed tokenizers exactly) and
:func:`check_vocabularies`, the start-up check that teacher and student map the student's ids to the same strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

__all__ = [
    "LocalTeacher",
    "ServedTeacher",
    "Teacher",
    "VocabularyMismatchError",
    "check_vocabularies",
    "choose_teacher_chunks",
    "memory_budget_bytes",
    "load_teacher",
    "load_tokenizer",
    "decoder_layer_width",
    "head_scores",
    "teacher_pass_peak_bytes",
    "teacher_scores",
]


class VocabularyMismatchError(ValueError):
    """Teacher and student disagree on what a student token id means."""


class Teacher(Protocol):
    def score(self, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor, completion_mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(argmax_ids [B, T] long, sampled_logp [B, T] float)`` over the completion positions."""
        ...


# ----------------------------------------------------------------------------------------------- loading
def load_tokenizer(path: str | Path, **kwargs):
    """Load a tokenizer folder (or a Hub id, :func:`tgpo.hub.resolve_model`) exactly as saved.

    ``AutoTokenizer`` rebuilds a Qwen2 tokenizer around a custom vocabulary when the folder's model config says
    Qwen2 (new pre-tokenizer, extra tokens); a folder saved from a plain ``PreTrainedTokenizerFast`` is loaded as
    one instead. Left padding, as generation needs.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from .hub import resolve_model

    kwargs.setdefault("padding_side", "left")
    path = Path(resolve_model(path, "tokenizer"))
    if not path.is_dir():  # a Hub id, online and not cached yet: transformers downloads it
        return AutoTokenizer.from_pretrained(str(path), **kwargs)
    cfg_file = path / "tokenizer_config.json"
    cls = json.loads(cfg_file.read_text()).get("tokenizer_class") if cfg_file.exists() else None
    if cls in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        return PreTrainedTokenizerFast.from_pretrained(path, **kwargs)
    return AutoTokenizer.from_pretrained(path, **kwargs)


def load_teacher(path: str | Path, dtype: torch.dtype | str | None = None, trust_remote_code: bool = False):
    """``(model, tokenizer)`` of a teacher (a folder or a Hub id, :func:`tgpo.hub.resolve_model`), in eval mode with
    gradients off."""
    from transformers import AutoModelForCausalLM

    from .hub import resolve_model

    path = resolve_model(path, "teacher model")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or "auto", trust_remote_code=trust_remote_code)
    return model.eval().requires_grad_(False), load_tokenizer(path)


# ------------------------------------------------------------------------------------ vocabulary check
def check_vocabularies(student_tokenizer, teacher_tokenizer, teacher_vocab_size: int | None = None) -> None:
    """Raise :class:`VocabularyMismatchError` unless the teacher reads every student id as the same token.

    Every id the student's tokenizer knows (``0 .. len(student_tokenizer)-1``) must decode to the same token
    string under the teacher's tokenizer, and the teacher's embedding (``teacher_vocab_size``) must cover them.
    The message names the first mismatching ids (at most five). ``tgpo align`` fixes the authors' case: a shared
    BPE id space whose special tokens differ (docs/method.md §2).
    """
    n = len(student_tokenizer)
    if teacher_vocab_size is not None and teacher_vocab_size < n:
        raise VocabularyMismatchError(
            f"teacher embedding has {teacher_vocab_size} rows but the student's tokenizer has {n} ids: "
            f"ids {teacher_vocab_size}..{n - 1} cannot be read by the teacher. Run `tgpo align` to resize it."
        )
    ids = list(range(n))
    s_tokens = student_tokenizer.convert_ids_to_tokens(ids)
    t_tokens = teacher_tokenizer.convert_ids_to_tokens(ids) if len(teacher_tokenizer) >= n else None
    if t_tokens is None:
        t_tokens = teacher_tokenizer.convert_ids_to_tokens(list(range(len(teacher_tokenizer)))) + [None] * (
            n - len(teacher_tokenizer)
        )
    bad = [i for i, (s, t) in enumerate(zip(s_tokens, t_tokens)) if s != t]
    if bad:
        shown = ", ".join(f"id {i}: student {s_tokens[i]!r} vs teacher {t_tokens[i]!r}" for i in bad[:5])
        raise VocabularyMismatchError(
            f"teacher and student tokenizers disagree on {len(bad)} of the student's {n} ids (first: {shown}). "
            "TGPO compares tokens by id, so both must share one id space; `tgpo align` reproduces the authors' "
            "alignment of special tokens and embedding size (docs/method.md §2)."
        )


# ------------------------------------------------------------------------------------------ local pass
#: Positions per LM-head tile of the local teacher pass (``teacher_chunk_tokens``). At V = 151,936 in bf16 a tile is
#: 512 x V x (2 + 4) bytes = 0.47 GB (the head's output and its float32 copy): 1/12 of one 9,216-position row's
#: float32 logits (5.6 GB), and still 512 x 2,048 x 151,936 multiply-adds per tile, enough to fill a GPU.
DEFAULT_CHUNK_TOKENS = 512


def _logit_softcap(model) -> float | None:
    """The model's final-logit soft cap (Gemma 2/3: ``cap * tanh(z / cap)``), or ``None``.

    Models that scale their logits (``logit_scale``, ``logits_scaling``, ...) differ in direction and placement per
    family (TRL's ``add_fused_lm_head`` lists five conventions); rather than guess, they are refused.
    """
    cfg = model.config.get_text_config()
    scaled = [k for k in ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
              if getattr(cfg, k, None) not in (None, 1, 1.0)]
    if scaled:
        raise NotImplementedError(
            f"the local teacher pass does not support models that scale their logits ({', '.join(scaled)} in "
            f"{type(model).__name__}'s config); serve such a teacher with vLLM (teacher_server_url) instead"
        )
    return getattr(cfg, "final_logit_softcapping", None)


@torch.no_grad()
def head_scores(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    targets: Tensor,
    vocab_limit: int,
    chunk_tokens: int | None = None,
    temperature: float = 1.0,
    softcap: float | None = None,
) -> tuple[Tensor, Tensor]:
    """The LM head over ``hidden`` in tiles of ``chunk_tokens`` rows, keeping two numbers per position.

    Args:
        hidden: ``[N, H]`` final hidden states (after the model's last norm).
        weight, bias: the output embedding, ``[V, H]`` and ``[V]`` or ``None`` (tied embeddings are the same tensor).
        targets: ``[N]`` long, the token whose log-prob is wanted (the student's sample).
        vocab_limit: the argmax is taken over ids ``< vocab_limit`` only (ids the student can emit).
        chunk_tokens: positions per tile (``None``: all ``N`` at once).
        temperature: the log-prob is of ``softmax(logits / temperature)``; the argmax does not depend on it.
        softcap: apply ``softcap * tanh(logits / softcap)`` first, as the model's own forward does.

    Returns:
        ``(argmax [N] long, logp [N] float32)``: ``argmax_{v < vocab_limit} logits[n, v]`` and
        ``log_softmax(logits[n] / temperature)[targets[n]]`` over the full vocabulary.

    Only one ``[chunk_tokens, V]`` tile exists at a time: the head's output in the weight's dtype and its float32
    copy (in place from then on). This is a small loop of its own rather than TRL's ``ChunkedLogProbFunction``
    (``trl.kernels``) or Liger's fused linear cross-entropy: both return the target's log-prob (TRL also the
    entropy and an is-top-1 flag) but not the argmax id, and a second pass for the argmax would compute the head
    twice — the head is most of a teacher pass's work on small models and ~10% of a 30B-A3B teacher's. (TRL's
    kernel tiles the vocabulary too; a whole-vocabulary tile of 512 positions is already only 0.47 GB in bf16.)
    """
    n_tok = hidden.size(0)
    argmax = torch.zeros(n_tok, dtype=torch.long, device=hidden.device)
    logp = torch.zeros(n_tok, dtype=torch.float32, device=hidden.device)
    step = chunk_tokens or max(n_tok, 1)
    for s in range(0, n_tok, step):
        e = min(s + step, n_tok)
        # The head's own dtype, then float32, exactly as the model's forward followed by .float() would give.
        z = torch.nn.functional.linear(hidden[s:e], weight, bias).float()  # [n, V]
        if softcap is not None:
            z.div_(softcap).tanh_().mul_(softcap)
        argmax[s:e] = z[:, :vocab_limit].argmax(-1)
        target = z.gather(1, targets[s:e, None]).squeeze(1)
        if temperature != 1.0:
            z.div_(temperature)
            target = target / temperature
        # log-sum-exp in place on the tile: torch.logsumexp would allocate a second [n, V] buffer.
        m = z.amax(-1, keepdim=True)
        lse = z.sub_(m).exp_().sum(-1).log_().add_(m.squeeze(1))
        logp[s:e] = target - lse
        del z
    return argmax, logp


@torch.no_grad()
def teacher_scores(
    teacher,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    completion_mask: Tensor,
    student_vocab_size: int,
    chunk_size: int | None = None,
    chunk_tokens: int | None = None,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """The teacher over prompt + student completion: its body once per ``chunk_size`` rows, its LM head over the
    completion positions in tiles of ``chunk_tokens`` (:func:`head_scores`).

    Args:
        teacher: a ``transformers`` causal LM (``base_model`` = its body, ``get_output_embeddings()`` = its head).
        prompt_ids, prompt_mask: ``[B, P]``, left-padded. completion_ids, completion_mask: ``[B, T]``, right-padded.
        student_vocab_size: ids the student can emit; the argmax is restricted to them.
        chunk_size: rows per body forward (``None``: all ``B``). chunk_tokens: positions per head tile, across the
            rows of a chunk (``None``: all of them at once, i.e. row chunks only).
        temperature: ``lp_T`` is the log-prob under ``softmax(logits / temperature)`` (the rollout temperature, as
            the authors' teacher worker does, docs/method.md §2); the argmax is the same at any temperature.

    Returns:
        ``(argmax_ids [B, T] long, sampled_logp [B, T] float32)``: the teacher's argmax over ids
        ``< student_vocab_size`` at each completion position, and its log-prob (full vocabulary) of the token the
        student sampled there. Positions with ``completion_mask == 0`` are 0 in both and cost no head compute.

    Memory beyond the weights: the body's activations for ``chunk_size`` rows plus one ``chunk_tokens x V`` tile,
    never ``rows x T x V`` (:func:`teacher_pass_peak_bytes`).
    """
    B, T = completion_ids.shape
    P = prompt_ids.size(1)
    if P == 0:
        raise ValueError("teacher_scores needs at least one prompt position (it predicts the first completion token)")
    rows_per = chunk_size or B
    body, head = teacher.base_model, teacher.get_output_embeddings()
    if body is teacher or head is None:
        raise TypeError(f"{type(teacher).__name__} is not a causal LM with a separate body and output head")
    softcap = _logit_softcap(teacher)
    body_device, head_device = next(body.parameters()).device, head.weight.device
    argmax_out = torch.zeros(B, T, dtype=torch.long, device=completion_ids.device)
    logp_out = torch.zeros(B, T, dtype=torch.float32, device=completion_ids.device)
    for start in range(0, B, rows_per):
        rows = slice(start, min(start + rows_per, B))
        hidden = body(
            input_ids=torch.cat([prompt_ids[rows], completion_ids[rows]], dim=1).to(body_device),
            attention_mask=torch.cat([prompt_mask[rows], completion_mask[rows]], dim=1).to(body_device),
            use_cache=False,  # a KV cache of the whole sequence would be dead weight here
        ).last_hidden_state
        # Position P-1+t predicts completion token t; only the real completion tokens go through the head.
        valid = completion_mask[rows].to(head_device).bool()
        h = hidden[:, P - 1 : P + T - 1].to(head_device)[valid]  # [N, H]
        del hidden
        argmax, logp = head_scores(h, head.weight, head.bias, completion_ids[rows].to(head_device)[valid],
                                   student_vocab_size, chunk_tokens, temperature, softcap)
        valid = valid.to(argmax_out.device)
        argmax_out[rows][valid] = argmax.to(argmax_out.device)
        logp_out[rows][valid] = logp.to(logp_out.device)
    return argmax_out, logp_out


def decoder_layer_width(config: Mapping) -> int:
    """Elements per position live at the peak of one decoder layer's forward without gradient.

    ``config`` is a ``transformers`` config as a dict (``PretrainedConfig.to_dict()``): ``hidden_size`` H,
    ``intermediate_size`` I (default 4H), ``num_attention_heads`` x ``head_dim`` (query width, default H),
    ``num_key_value_heads`` x ``head_dim`` (default: the query width), and for a mixture of experts
    ``num_experts_per_tok`` k. The larger of three phases, fitted to torch's measured CPU allocations of
    transformers' Qwen2 and Qwen3-MoE layers (float32 and bf16 alike, from 1% under to 12% over):

    * dense MLP: the residual stream, its normed copy and temporaries (5H) plus gate, up and their product (3I);
    * attention: 3H plus q, its rotary temporaries and the attention output (4 query widths) plus k and v (4 kv
      widths), with a memory-efficient kernel (no ``L x L`` scores);
    * experts (transformers' default experts kernels): every token gathered once per chosen expert, with the
      expert outputs, ``4H + 4kH`` whatever the experts' width.
    """
    H = int(config["hidden_size"])
    heads = int(config.get("num_attention_heads") or 1)
    head_dim = int(config.get("head_dim") or H // heads)
    att = heads * head_dim
    kv = int(config.get("num_key_value_heads") or heads) * head_dim
    attention = 3 * H + 4 * att + 4 * kv
    k = int(config.get("num_experts_per_tok") or 0)
    mlp = 4 * H + 4 * k * H if k else 5 * H + 3 * int(config.get("intermediate_size") or 4 * H)
    return max(attention, mlp)


def teacher_pass_peak_bytes(
    rows: int,
    T: int,
    V: int,
    H: int,
    chunk_tokens: int | None,
    *,
    layer_width: int,
    prompt_len: int = 0,
    dtype_bytes: int = 2,
    padded: bool = True,
) -> int:
    """Peak memory of one row chunk of :func:`teacher_scores`, beyond the teacher's weights, in bytes.

    Args:
        rows: rows per body forward (``teacher_chunk_size``). T: completion positions, all real (the worst case).
        V, H: the teacher's vocabulary (output-embedding rows) and hidden size.
        chunk_tokens: positions per head tile (``teacher_chunk_tokens``; ``None``: ``rows * T``, row chunks only).
        layer_width: :func:`decoder_layer_width` of the teacher's config.
        prompt_len: prompt positions, which the body runs over too (``L = prompt_len + T``).
        dtype_bytes: bytes per element of the teacher's weights and activations (bf16: 2, float32: 4).
        padded: the batch has padding, so transformers builds a boolean ``L x L`` mask per row for SDPA, which
            the kernel turns into an additive one in the activations' dtype (not with FlashAttention-2).

    The pass has two phases and the peak is the larger:

    * body: ``rows * L * layer_width`` activations, plus the masks (``rows * L^2 * (1 + dtype_bytes)``);
    * head: the body's output ``[rows, L, H]`` and its gathered completion positions ``[rows * T, H]``, one
      ``chunk_tokens x V`` tile (the head's output in ``dtype_bytes`` and its float32 copy; one buffer in
      float32), and the ``[rows * T]`` outputs.

    Not counted: the CUDA context and the allocator's fragmentation (leave a few GB), and eager attention's
    ``L x L`` scores (use SDPA or FlashAttention for long sequences). Checked against torch's measured CPU
    allocations in tests/test_memory.py.
    """
    L = prompt_len + T
    body = rows * L * layer_width * dtype_bytes + (rows * L * L * (1 + dtype_bytes) if padded else 0)
    c = min(chunk_tokens or rows * T, rows * T)
    tile = c * V * (4 if dtype_bytes == 4 else dtype_bytes + 4)
    head = rows * L * H * dtype_bytes + rows * T * H * dtype_bytes + tile + rows * T * 12
    return int(max(body, head))


#: ``teacher_chunk_size`` / ``teacher_chunk_tokens`` value that lets :func:`choose_teacher_chunks` decide.
AUTO = "auto"


def memory_budget_bytes(device: str | torch.device) -> int:
    """Half of the memory free now on ``device`` (CUDA: ``mem_get_info``; CPU: the kernel's ``MemAvailable``), the
    share a teacher pass may take beside whatever else the run holds."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0] // 2)
    with open("/proc/meminfo") as fh:
        info = dict(line.split(":", 1) for line in fh)
    return int(info["MemAvailable"].split()[0]) * 1024 // 2


def choose_teacher_chunks(config: Mapping, rows: int, T: int, *, prompt_len: int, dtype_bytes: int, device: str,
                          budget_bytes: int) -> tuple[int | None, int | None, str]:
    """``(teacher_chunk_size, teacher_chunk_tokens, why)`` for a teacher pass over ``rows`` rollouts of ``T``
    completion positions, from :func:`teacher_pass_peak_bytes` and a memory budget.

    The whole batch in one forward and one head pass (``None, None``) when it fits: chunks only add per-forward
    overhead (on a CPU, 1.5x slower passes at the lab's size, docs/method.md §2). Otherwise the head in tiles of
    :data:`DEFAULT_CHUNK_TOKENS` positions and the most rows per forward (halving from ``rows``) that fit; one row if
    none does (the reason says so).
    """
    V, H = int(config["vocab_size"]), int(config["hidden_size"])
    width = decoder_layer_width(config)

    def peak(r, tokens):
        return teacher_pass_peak_bytes(r, T, V, H, tokens, layer_width=width, prompt_len=prompt_len,
                                       dtype_bytes=dtype_bytes)

    gb = 1e9
    whole = peak(rows, None)
    if whole <= budget_bytes:
        return None, None, (f"{device}: the whole batch ({rows} rows) in one pass needs {whole / gb:.2f} GB, within "
                            f"the {budget_bytes / gb:.1f} GB budget: no row or position chunks")
    r = rows
    while r > 1 and peak(r, DEFAULT_CHUNK_TOKENS) > budget_bytes:
        r = (r + 1) // 2
    need = peak(r, DEFAULT_CHUNK_TOKENS)
    verdict = "fits" if need <= budget_bytes else "does NOT fit; lower the batch or the completion length"
    return r, DEFAULT_CHUNK_TOKENS, (f"{device}: the whole batch would need {whole / gb:.2f} GB of a "
                                     f"{budget_bytes / gb:.1f} GB budget; {r} rows per forward with head tiles of "
                                     f"{DEFAULT_CHUNK_TOKENS} positions need {need / gb:.2f} GB ({verdict})")


class LocalTeacher:
    """A teacher model in this process (eval mode, no gradients), scored by :func:`teacher_scores`.

    Args:
        model: a causal LM that reads the student's token ids.
        student_vocab_size: ids the student can emit (its output-embedding rows); the teacher's argmax is
            restricted to them.
        chunk_size: rows per teacher body forward (``None``: the whole batch at once).
        chunk_tokens: positions per LM-head tile (``None``: all positions of a row chunk at once).
        temperature: the teacher's log-probs are of ``softmax(logits / temperature)``.
    """

    def __init__(self, model, student_vocab_size: int, chunk_size: int | None = None,
                 chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS, temperature: float = 1.0):
        self.model = model.eval().requires_grad_(False)
        self.student_vocab_size = min(student_vocab_size, model.get_output_embeddings().weight.shape[0])
        self.chunk_size = chunk_size
        self.chunk_tokens = chunk_tokens
        self.temperature = float(temperature)
        _logit_softcap(model)  # refuse a model with scaled logits now, not at the first step

    def score(self, prompt_ids, prompt_mask, completion_ids, completion_mask):
        return teacher_scores(
            self.model, prompt_ids, prompt_mask, completion_ids, completion_mask, self.student_vocab_size,
            self.chunk_size, self.chunk_tokens, self.temperature,
        )


# ------------------------------------------------------------------------------------------ served pass
def _http_vllm_client(base_url: str, timeout: float):
    """TRL's ``VLLMClient`` for scoring only.

    ``VLLMClient.__init__`` refuses to run without the ``vllm`` package, which a trainer that only *talks* to a
    teacher server does not need; scoring uses plain HTTP (``/health``, ``/v1/models``, ``/v1/completions``), so the
    client is set up here the way its constructor does, minus that check. Everything else — the request and the
    parsing of vLLM's ``prompt_logprobs`` — is TRL's own ``get_sequence_logprobs``.
    """
    from trl.generation.vllm_client import VLLMClient

    try:
        return VLLMClient(base_url=base_url, connection_timeout=timeout)
    except ImportError:
        pass
    from urllib.parse import urlparse

    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    client = VLLMClient.__new__(VLLMClient)
    client.session = requests.Session()
    retry = Retry(total=5, connect=5, read=5, status=3, status_forcelist=[500, 502, 503], backoff_factor=2,
                  allowed_methods=["POST", "GET"])
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    client.session.mount("http://", adapter)
    client.session.mount("https://", adapter)
    parsed = urlparse(base_url)
    client.host = parsed.hostname
    client.base_url = f"{parsed.scheme or 'http'}://{parsed.netloc}{parsed.path}".rstrip("/")
    client.group_port, client.communicator, client._updating_weights = 51216, None, False
    client.check_server(timeout)
    client.model = client._get(f"{client.base_url}/v1/models")["data"][0]["id"]
    return client


class ServedTeacher:
    """A teacher behind an OpenAI-compatible ``vllm serve`` endpoint, scored over the student's rollouts.

    One ``/v1/completions`` request per batch (or per ``chunk_size`` sequences, sent concurrently) carries each
    row's unpadded prompt + completion ids with ``max_tokens=1, prompt_logprobs=top_logprobs``; vLLM returns, at
    every position, the teacher's top-k tokens and the token actually there (the student's sample). So:

    * ``sampled_logp`` = the log-prob of the sampled token (full vocabulary, ``temperature``);
    * ``argmax_ids`` = the highest-ranked of the top-k ids that the student can emit (``< student_vocab_size``).

    What cannot be restricted server-side: vLLM's ``prompt_logprobs`` rank the teacher's whole vocabulary — its
    ``allowed_token_ids``/logit processors act on sampled tokens only — so the restriction to the student's ids is
    done here, among the top-k. With ``top_logprobs=1`` (the cheapest) a position whose top-1 is outside the
    student's ids keeps it, and the count is kept in :attr:`unrestricted_positions`; after ``tgpo align`` both
    models share one embedding size and this cannot happen. Ask for ``top_logprobs > 1`` otherwise.

    Start the server with ``--logprobs-mode processed_logprobs`` when ``temperature != 1`` (otherwise vLLM
    silently ignores the temperature in the log-probs it returns); at temperature 1 raw and processed log-probs are equal.

    Args:
        base_url: e.g. ``http://teacher-host:8001``.
        student_vocab_size: ids the student can emit.
        top_logprobs, temperature, chunk_size, timeout: see above; ``timeout`` is how long to wait for ``/health``.
        client: an object with TRL's ``get_sequence_logprobs`` (tests, or a client you built yourself).
    """

    def __init__(self, base_url: str, student_vocab_size: int, *, top_logprobs: int = 1, temperature: float = 1.0,
                 chunk_size: int = 0, timeout: float = 240.0, client=None):
        self.client = client if client is not None else _http_vllm_client(base_url, timeout)
        self.base_url = base_url
        self.student_vocab_size = int(student_vocab_size)
        self.top_logprobs = int(top_logprobs)
        self.temperature = float(temperature)
        self.chunk_size = int(chunk_size)
        self.unrestricted_positions = 0

    def score(self, prompt_ids, prompt_mask, completion_ids, completion_mask):
        B, T = completion_ids.shape
        sequences, prompt_lengths, lengths = [], [], []
        for i in range(B):
            prompt = prompt_ids[i][prompt_mask[i].bool()].tolist()  # prompts are left-padded
            valid = completion_mask[i].nonzero()
            n = int(valid[-1]) + 1 if len(valid) else 0  # completions are right-padded
            sequences.append(prompt + completion_ids[i, :n].tolist())
            prompt_lengths.append(len(prompt))
            lengths.append(n)
        argmax_out = torch.zeros(B, T, dtype=torch.long)
        logp_out = torch.zeros(B, T, dtype=torch.float32)
        if max(lengths, default=0) == 0:
            return argmax_out.to(completion_ids.device), logp_out.to(completion_ids.device)
        result = self.client.get_sequence_logprobs(
            sequences, prompt_lengths, top_logprobs=self.top_logprobs, temperature=self.temperature,
            chunk_size=self.chunk_size,
        )
        for i, n in enumerate(lengths):
            if n == 0:
                continue
            ids = torch.tensor(result["logprob_token_ids"][i], dtype=torch.long).view(n, -1)
            lps = torch.tensor(result["logprobs"][i], dtype=torch.float32).view(n, -1)
            allowed = (ids < self.student_vocab_size) & torch.isfinite(lps)
            first = allowed.float().argmax(-1)  # highest rank among the allowed ids (ranks are sorted)
            none = ~allowed.any(-1)
            self.unrestricted_positions += int(none.sum())
            argmax_out[i, :n] = torch.where(none, ids[:, 0], ids.gather(1, first[:, None]).squeeze(1))
            actual = torch.tensor(result["actual_logprobs"][i], dtype=torch.float32).view(n)
            logp_out[i, :n] = actual
        mask = completion_mask.bool().cpu()
        if not torch.isfinite(logp_out[mask]).all():
            raise RuntimeError(
                f"the teacher server at {self.base_url} returned no log-prob for some sampled tokens; "
                "is it a `vllm serve` that honours prompt_logprobs?"
            )
        logp_out = torch.where(mask, logp_out, 0.0)
        return argmax_out.to(completion_ids.device), logp_out.to(completion_ids.device)
