"""The lm-eval models behind ``tgpo eval``: never a silently truncated prompt, never a lost or faked answer.

- :class:`GuardedHFLM` (and :func:`guarded_vllm_class`): lm-eval's transformers / vLLM models, which check,
  before generating anything, that the longest prompt plus the generation budget fits the model's context.
  lm-eval itself would cut the prompt from the left without an error (with 8192 new tokens on a 4096-position
  model, to nothing).
- :class:`ChatCompletionsClient`: lm-eval's ``local-chat-completions`` model with its request loop replaced.
  Every sample is its own request, cached on disk under a key that includes its repeat index (lm-eval's
  ``--use_cache`` keys on the request alone, so the k repeats of a problem would come back as one answer
  k times). Failures are retried with exponential backoff; a sample that still has no usable answer is
  counted per task (``missing``), the others are kept, and a rerun sends only what is missing (a run that
  ended complete leaves its cache to be archived, not reused). A refusal
  (an HTTP 4xx status not in ``RETRY_STATUSES``, which are retried) stops the run with the
  server's own message.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from lm_eval.models.huggingface import HFLM
from lm_eval.models.openai_completions import LocalChatCompletion
from lm_eval.models.utils import normalize_gen_kwargs, postprocess_generated_text

log = logging.getLogger("tgpo.eval")

__all__ = [
    "ChatCompletionsClient",
    "ContextTooLong",
    "GuardedHFLM",
    "RequestCache",
    "ServerRefused",
    "cache_is_complete",
    "guarded_vllm_class",
]


class ContextTooLong(Exception):
    """A prompt plus its generation budget does not fit the model's context (one-line message)."""


class ServerRefused(Exception):
    """The server refused a request outright (HTTP 4xx); the message is the server's."""


# --------------------------------------------------------------------------------------------------------
# Context guard (hf, vllm)
# --------------------------------------------------------------------------------------------------------


def check_context(lm, requests, model_name: str) -> None:
    """Raise :class:`ContextTooLong` unless every request's prompt plus its ``max_gen_toks`` fits
    ``lm.max_length``. Each distinct prompt is tokenized once."""
    limit = int(lm.max_length)
    worst: tuple[int, int, str] | None = None  # (prompt tokens + new tokens, prompt tokens, task)
    seen: set[tuple[str, int]] = set()
    for req in requests:
        context, gen_kwargs = req.args[0], req.args[1]
        new_tokens = int(normalize_gen_kwargs(gen_kwargs, lm.max_gen_toks)["max_gen_toks"])
        if (context, new_tokens) in seen:
            continue
        seen.add((context, new_tokens))
        n = len(lm.tok_encode(context))
        if worst is None or n + new_tokens > worst[0]:
            worst = (n + new_tokens, n, getattr(req, "task_name", "?"))
    if worst is None or worst[0] <= limit:
        return
    total, prompt, task = worst
    new_tokens = total - prompt
    fix = (
        f"lower --max-new-tokens to {limit - prompt} or raise --max-model-len"
        if prompt < limit
        else "raise --max-model-len (no --max-new-tokens helps: the prompt alone is longer)"
    )
    raise ContextTooLong(
        f"{model_name} has a context of {limit} tokens, but the longest prompt ({task}) has {prompt} tokens "
        f"and --max-new-tokens is {new_tokens} ({total} in all): {fix} (only if the model supports a longer "
        "context); prompts are never truncated"
    )


class _ContextGuard:
    """Mixin: :func:`check_context` before lm-eval's ``generate_until``."""

    display_name = "the model"

    def generate_until(self, requests, disable_tqdm: bool = False):
        check_context(self, requests, self.display_name)
        return super().generate_until(requests, disable_tqdm=disable_tqdm)


class GuardedHFLM(_ContextGuard, HFLM):
    """lm-eval's ``hf`` model with the context guard."""


def guarded_vllm_class():
    """lm-eval's ``vllm`` model with the context guard (imported on demand: vLLM is a GPU-only extra)."""
    from lm_eval.models.vllm_causallms import VLLM

    class GuardedVLLM(_ContextGuard, VLLM):
        pass

    return GuardedVLLM


# --------------------------------------------------------------------------------------------------------
# Chat-completions client (api)
# --------------------------------------------------------------------------------------------------------


class RequestCache:
    """Answers by request key, in a SQLite file, written as each answer arrives (a crash loses nothing).

    A run that ends complete marks its cache so; :func:`cache_is_complete` then tells the next run to start
    afresh (a model name may serve a new checkpoint), while an interrupted or incomplete run is resumed.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        self._db.commit()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, answer: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, answer))
            self._db.commit()

    def mark_complete(self) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def cache_is_complete(path: Path) -> bool:
    """Whether the cache at ``path`` belongs to a run that finished with every answer."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE name = 'complete'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "1"


class _Unusable(Exception):
    """A response that came back but cannot be used (retried, then counted as missing)."""


class _Refused(Exception):
    pass


#: HTTP statuses worth retrying: timeouts, rate limits, server errors.
RETRY_STATUSES = {408, 409, 425, 429}


class ChatCompletionsClient(LocalChatCompletion):
    """``local-chat-completions`` with a per-sample cache, configurable retries and honest failure counts.

    Args (besides lm-eval's): ``max_retries``: retries after the first attempt; ``retry_wait``: seconds before
    the first retry, doubling up to ``retry_wait_max``; ``timeout``: seconds per request; ``cache_path``: the
    SQLite answer cache (``None``: no cache).
    """

    def __init__(
        self,
        *,
        max_retries: int = 5,
        retry_wait: float = 1.0,
        retry_wait_max: float = 60.0,
        cache_path: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("tokenizer_backend", None)
        kwargs.setdefault("tokenized_requests", False)
        super().__init__(max_retries=max_retries + 1, **kwargs)
        self.retries = int(max_retries)
        self.retry_wait = float(retry_wait)
        self.retry_wait_max = float(retry_wait_max)
        self.cache = RequestCache(Path(cache_path)) if cache_path else None
        self.missing: Counter[str] = Counter()  # task -> samples without a usable answer after the retries
        self.unusable: Counter[str] = Counter()  # why: "HTTP 500", "no content", ... (last error per sample)
        self.cached = 0
        self.sent = 0
        self._local = threading.local()

    # ---- one request
    def _session(self):
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _answer(self, payload: dict) -> str:
        """One attempt: the answer text, or :class:`_Unusable` / :class:`_Refused`."""
        import requests

        try:
            response = self._session().post(
                self.base_url, json=payload, headers=self.header, timeout=self.timeout, verify=self.verify_certificate
            )
        except requests.RequestException as e:
            raise _Unusable(type(e).__name__) from None
        if response.status_code >= 400:
            if 400 <= response.status_code < 500 and response.status_code not in RETRY_STATUSES:
                raise _Refused(f"HTTP {response.status_code}: {_error_message(response)}")
            raise _Unusable(f"HTTP {response.status_code}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Unusable("unexpected response schema") from None
        if not isinstance(content, str):
            raise _Unusable("no content")
        return postprocess_generated_text(content, stop=None, think_end_token=self.think_end_token)

    def _answer_with_retries(self, payload: dict) -> tuple[str | None, str]:
        """``(answer, "")`` or ``(None, last error)``; refusals propagate."""
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.retry_wait * 2 ** (attempt - 1), self.retry_wait_max))
            try:
                return self._answer(payload), ""
            except _Unusable as e:
                error = str(e)
                log.info("request failed (%s), attempt %d of %d", error, attempt + 1, self.retries + 1)
        return None, error

    # ---- the lm-eval entry point
    def _payload(self, request) -> dict:
        messages = json.loads(request.args[0].prompt) if hasattr(request.args[0], "prompt") else request.args[0]
        return self._create_payload(
            messages, generate=True, gen_kwargs=copy.deepcopy(request.args[1]), seed=self._seed, eos=None
        )

    def _key(self, payload: dict, repeat: int) -> str:
        body = json.dumps({"payload": payload, "repeat": repeat}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode("utf-8")).hexdigest()

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from tqdm import tqdm

        repeats: Counter[int] = Counter()  # lm-eval passes the k repeats as the same Instance k times
        answers: list[str | None] = [None] * len(requests)
        todo: list[tuple[int, dict, str]] = []
        for i, req in enumerate(requests):
            payload = self._payload(req)
            key = self._key(payload, repeats[id(req)])
            repeats[id(req)] += 1
            hit = self.cache.get(key) if self.cache else None
            if hit is not None:
                answers[i] = hit
                self.cached += 1
            else:
                todo.append((i, payload, key))
        if self.cached:
            log.info("%d of %d answers from the request cache; sending %d", self.cached, len(requests), len(todo))
        refused: str | None = None
        with ThreadPoolExecutor(max_workers=max(1, self._concurrent)) as pool:
            futures = {pool.submit(self._answer_with_retries, payload): (i, key) for i, payload, key in todo}
            for future in tqdm(as_completed(futures), total=len(futures), disable=disable_tqdm, desc="Requesting API"):
                i, key = futures[future]
                if future.cancelled():  # after a refusal
                    continue
                try:
                    answer, error = future.result()
                except _Refused as e:
                    refused = refused or str(e)
                    for f in futures:
                        f.cancel()
                    continue
                self.sent += 1
                if answer is None:
                    self.missing[requests[i].task_name] += 1
                    self.unusable[error] += 1
                    continue
                answers[i] = answer
                if self.cache:
                    self.cache.put(key, answer)
        if refused:
            raise ServerRefused(refused)
        return [a if a is not None else "" for a in answers]


def _error_message(response) -> str:
    try:
        body = response.json()
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("message")
        message = message or body.get("detail") or body
    except ValueError:
        message = response.text
    return " ".join(str(message).split())[:500]
