"""Running a teacher over student rollouts, behind one small interface (SPEC §1–2).

A teacher answers one question about a batch of student rollouts: at every completion position, what is the
teacher's next token on the student's own prefix (``yT``, its argmax restricted to ids the student can emit), and
what log-prob does the teacher give the token the student actually sampled (``lp_T``)? Every implementation
returns ``(argmax_ids, sampled_logp)``, both ``[B, T]``, from :meth:`Teacher.score`.

* :class:`LocalTeacher` — a ``transformers`` model in this process, run without gradient in row chunks so the
  teacher logits of the whole batch (``B x T x V``) are never held at once.
* :class:`ServedTeacher` — a teacher behind ``vllm serve`` (its own GPUs, or another node), scored with TRL's
  ``VLLMClient.get_sequence_logprobs(..., top_logprobs=k)``: the completion's prompt log-probs, top-1 = the argmax,
  plus the sampled token's log-prob, which vLLM always returns next to the top-k.

Also here: :func:`load_tokenizer` (loads custom ``tokenizers``-backed tokenizers exactly) and
:func:`check_vocabularies`, the start-up check that teacher and student map the student's ids to the same strings.
"""

from __future__ import annotations

import json
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
    "load_teacher",
    "load_tokenizer",
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
    """Load a tokenizer folder exactly as saved.

    ``AutoTokenizer`` rebuilds a Qwen2 tokenizer around a custom vocabulary when the folder's model config says
    Qwen2 (new pre-tokenizer, extra tokens); a folder saved from a plain ``PreTrainedTokenizerFast`` is loaded as
    one instead. Left padding, as generation needs.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"tokenizer path {str(path)!r} does not exist")
    kwargs.setdefault("padding_side", "left")
    cfg_file = path / "tokenizer_config.json"
    cls = json.loads(cfg_file.read_text()).get("tokenizer_class") if cfg_file.exists() else None
    if cls in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        return PreTrainedTokenizerFast.from_pretrained(path, **kwargs)
    return AutoTokenizer.from_pretrained(path, **kwargs)


def load_teacher(path: str | Path, dtype: torch.dtype | str | None = None, trust_remote_code: bool = False):
    """``(model, tokenizer)`` of a local teacher folder, in eval mode with gradients off."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"teacher model path {str(path)!r} does not exist")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or "auto", trust_remote_code=trust_remote_code)
    return model.eval().requires_grad_(False), load_tokenizer(path)


# ------------------------------------------------------------------------------------ vocabulary check
def _describe(tok_name: str, tokens: list) -> str:
    return f"{tok_name}={tokens!r}"


def check_vocabularies(student_tokenizer, teacher_tokenizer, teacher_vocab_size: int | None = None) -> None:
    """Raise :class:`VocabularyMismatchError` unless the teacher reads every student id as the same token.

    Every id the student's tokenizer knows (``0 .. len(student_tokenizer)-1``) must decode to the same token
    string under the teacher's tokenizer, and the teacher's embedding (``teacher_vocab_size``) must cover them.
    The message names the first mismatching ids (at most five). ``tgpo align`` fixes the authors' case: a shared
    BPE id space whose special tokens differ (SPEC §2).
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
            "alignment of special tokens and embedding size (SPEC §2)."
        )


# ------------------------------------------------------------------------------------------ local pass
@torch.no_grad()
def teacher_scores(
    teacher,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    completion_mask: Tensor,
    student_vocab_size: int,
    chunk_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """One teacher forward over prompt + student completion, in row chunks of ``chunk_size``.

    Returns ``(argmax_ids, sampled_logp)``, each ``[B, T]``: the teacher's argmax over ids ``< student_vocab_size``
    at each completion position, and the teacher's log-prob (full vocabulary, temperature 1) of the token the
    student sampled there. Values at padded positions are meaningless (argmax 0-padding, log-prob 0) and must
    be masked by the caller. Only ``chunk_size x (T+1) x V`` logits exist at any time.
    """
    B, T = completion_ids.shape
    chunk_size = chunk_size or B
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
    device = next(teacher.parameters()).device
    argmax_out = torch.zeros(B, T, dtype=torch.long, device=completion_ids.device)
    logp_out = torch.zeros(B, T, dtype=torch.float32, device=completion_ids.device)
    for start in range(0, B, chunk_size):
        rows = slice(start, min(start + chunk_size, B))
        # logits_to_keep=T+1 keeps positions P-1 .. P+T-1; the last one predicts past the completion: dropped.
        logits = teacher(
            input_ids=input_ids[rows].to(device), attention_mask=attention_mask[rows].to(device), logits_to_keep=T + 1
        ).logits[:, :-1].float()
        argmax_out[rows] = logits[..., :student_vocab_size].argmax(-1).to(argmax_out.device)
        targets = completion_ids[rows].to(device).unsqueeze(-1)
        sampled = logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        logp_out[rows] = torch.where(completion_mask[rows].to(device).bool(), sampled, 0.0).to(logp_out.device)
        del logits
    return argmax_out, logp_out


class LocalTeacher:
    """A teacher model in this process (eval mode, no gradients), scored in row chunks.

    Args:
        model: a causal LM that reads the student's token ids.
        student_vocab_size: ids the student can emit (its output-embedding rows); the teacher's argmax is
            restricted to them.
        chunk_size: rows per teacher forward (``None``: the whole batch at once).
    """

    def __init__(self, model, student_vocab_size: int, chunk_size: int | None = None):
        self.model = model.eval().requires_grad_(False)
        self.student_vocab_size = min(student_vocab_size, model.get_output_embeddings().weight.shape[0])
        self.chunk_size = chunk_size

    def score(self, prompt_ids, prompt_mask, completion_ids, completion_mask):
        return teacher_scores(
            self.model, prompt_ids, prompt_mask, completion_ids, completion_mask, self.student_vocab_size, self.chunk_size
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

    Start the server with ``--logprobs-mode processed_logprobs`` when ``temperature != 1`` (NOTES.md: otherwise
    vLLM silently ignores the temperature); at temperature 1 raw and processed log-probs are equal.

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
