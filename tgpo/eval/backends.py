"""The lm-eval models behind ``tgpo eval``: never a silently truncated prompt, never a lost or faked answer, never a
sampling setting that is not the protocol's (:mod:`tgpo.eval.protocol`).

- :class:`GuardedHFLM` (and :func:`guarded_vllm_class`): lm-eval's transformers / vLLM models, which check,
  before generating anything, that the longest prompt plus the generation budget fits the model's context.
  lm-eval itself would cut the prompt from the left without an error (with 8192 new tokens on a 4096-position
  model, to nothing). They pass every sampling setting explicitly (a checkpoint's generation config cannot
  change one) and cache each (request, repeat) answer as it comes, so a killed run resumes (:class:`_Resumable`).
- :class:`ChatCompletionsClient`: lm-eval's ``local-chat-completions`` model with its request loop replaced.
  Every sample is its own request, cached on disk under a key that includes its repeat index (lm-eval's
  ``--use_cache`` keys on the request alone, so the k repeats of a problem would come back as one answer
  k times). Failures are retried with exponential backoff; a sample that still has no usable answer is
  counted per task (``missing``), the others are kept, and a rerun sends only what is missing (a run that
  ended complete leaves its cache to be archived, not reused). A refusal
  (HTTP 4xx other than those in :data:`RETRY_STATUSES`) stops the run with the server's own message. A
  ``Retry-After`` header sets the wait before the next try; one Ctrl-C stops the run at once, keeping every answer.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lm_eval.models.huggingface import HFLM
from lm_eval.models.openai_completions import LocalChatCompletion
from lm_eval.models.utils import normalize_gen_kwargs, postprocess_generated_text
from lm_eval.models.utils_hf import stop_sequences_criteria

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


def sample_keys(requests, identity: Mapping[str, Any], payload=lambda req: [req.args[0], req.args[1]]) -> list[str]:
    """One cache key per (request, repeat): lm-eval passes the k repeats of a problem as the same Instance k times,
    and lm-eval's own ``--use_cache`` keys on the request alone, so its k repeats would come back as one answer k
    times. ``identity``: what else the answer depends on (the model, its arguments)."""
    seen: Counter[int] = Counter()
    keys = []
    for req in requests:
        body = json.dumps({"identity": identity, "payload": payload(req), "repeat": seen[id(req)]}, sort_keys=True,
                          ensure_ascii=False, default=str)
        seen[id(req)] += 1
        keys.append(hashlib.sha256(body.encode("utf-8")).hexdigest())
    return keys


class _Resumable:
    """Mixin for the local backends (hf, vllm): the context guard, then every (request, repeat) answer cached as
    it comes, in chunks, so a killed run rerun into the same folder generates only what is missing.

    lm-eval's ``--use_cache`` cannot do this: it skips sampled requests (``do_sample``/temperature > 0) and keys on
    the request alone, so the repeats of avg@32 would neither be cached nor be told apart. Attributes set by
    :func:`tgpo.eval.run.build_model`: ``cache`` (a :class:`RequestCache` or ``None``), ``cache_identity``,
    ``resume_chunk`` (requests per chunk; each chunk is one call of lm-eval's ``generate_until``)."""

    display_name = "the model"
    cache: RequestCache | None = None
    cache_identity: Mapping[str, Any] = {}
    resume_chunk = 64
    cached = 0
    sent = 0

    def generate_until(self, requests, disable_tqdm: bool = False):
        check_context(self, requests, self.display_name)
        if self.cache is None:
            self.sent += len(requests)
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        keys = sample_keys(requests, self.cache_identity)
        answers: list[str | None] = [self.cache.get(k) for k in keys]
        todo = [i for i, a in enumerate(answers) if a is None]
        self.cached += len(requests) - len(todo)
        if self.cached:
            log.info("%d of %d answers from the cache; generating %d", self.cached, len(requests), len(todo))
        for chunk in self._chunks(requests, todo):
            outs = super().generate_until([requests[i] for i in chunk], disable_tqdm=True)
            self.cache.put_many([(keys[i], out) for i, out in zip(chunk, outs)])
            self.sent += len(chunk)
            for i, out in zip(chunk, outs):
                answers[i] = out
        return answers

    def _chunks(self, requests, todo: list[int]) -> list[list[int]]:
        """``todo`` in chunks of ``resume_chunk`` (a multiple of the batch size), each of one generation setting, in
        the order lm-eval sorts a call's requests (longest prompt first, then the text; stable). lm-eval re-sorts
        each chunk the same way, so the batches are those of one call over everything: the answers do not depend
        on the chunking (padding differs with the batch)."""
        groups: dict[str, list[int]] = {}
        for i in todo:
            groups.setdefault(json.dumps(requests[i].args[1], sort_keys=True, default=str), []).append(i)
        chunks = []
        for members in groups.values():
            members.sort(key=lambda i: (-len(self.tok_encode(requests[i].args[0])), requests[i].args[0]))
            chunks += [members[k : k + self.resume_chunk] for k in range(0, len(members), self.resume_chunk)]
        return chunks


#: generation_config fields that do not change what is generated.
_INERT = {"transformers_version", "_from_model_config", "use_cache", "output_attentions", "output_hidden_states",
          "return_dict_in_generate", "output_scores", "output_logits", "cache_implementation",
          "bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"}


class GuardedHFLM(_Resumable, HFLM):
    """lm-eval's ``hf`` model with the context guard, the resumable cache, and the protocol's settings.

    The checkpoint's ``generation_config`` is replaced by one that holds only its token ids (transformers fills
    every field a ``generate`` call leaves unset from it: a ``max_new_tokens`` there would beat lm-eval's
    ``max_length``), and every sampling setting is passed to ``generate`` (:func:`~tgpo.eval.protocol.hf_generate_kwargs`).
    What the checkpoint set is kept in ``checkpoint_generation`` and named once in a warning."""

    checkpoint_generation: dict[str, Any] = {}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from transformers import GenerationConfig

        original = self.model.generation_config
        self.checkpoint_generation = {k: v for k, v in original.to_diff_dict().items() if k not in _INERT}
        ids = {k: getattr(original, k, None) for k in _INERT if k.endswith("token_id")}
        self.model.generation_config = GenerationConfig(**{k: v for k, v in ids.items() if v is not None})

    def warn_checkpoint_generation(self) -> str | None:
        """The one line naming what the checkpoint's generation config set and the protocol overrides, if any."""
        if not self.checkpoint_generation:
            return None
        fields = ", ".join(f"{k}={v}" for k, v in sorted(self.checkpoint_generation.items()))
        return (f"{self.display_name}: its generation_config.json sets {fields}; ignored: every generation setting "
                "comes from the protocol (the manifest's 'generation')")

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs):
        import torch

        from tgpo.eval.protocol import effective_settings, hf_generate_kwargs

        settings = effective_settings({}, generation_kwargs)
        kw = hf_generate_kwargs(settings, max_new_tokens=max_length - context.shape[1])
        stopping_criteria = stop_sequences_criteria(self.tokenizer, stop, context.shape[1], context.shape[0])
        with torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                            enabled=self.mixed_precision_dtype is not None):
            return self.model.generate(input_ids=context, stopping_criteria=stopping_criteria,
                                       pad_token_id=self.tokenizer.pad_token_id, use_cache=True, **kw)


def guarded_vllm_class():
    """lm-eval's ``vllm`` model with the context guard, the resumable cache, and every ``SamplingParams`` field set
    (imported on demand: vLLM is a GPU-only extra)."""
    from lm_eval.models.utils import handle_stop_sequences
    from lm_eval.models.vllm_causallms import VLLM

    from tgpo.eval.protocol import effective_settings, vllm_sampling_kwargs

    class GuardedVLLM(_Resumable, VLLM):
        resume_chunk = 1024

        @staticmethod
        def modify_gen_kwargs(gen_kwargs, eos=None, default_max_gen_toks: int = 256):
            # lm-eval's version passes on only what the task names; vLLM would default the rest from the checkpoint
            params = vllm_sampling_kwargs(effective_settings({"max_gen_toks": default_max_gen_toks}, gen_kwargs))
            until = handle_stop_sequences(params.pop("stop"), eos=eos[0] if isinstance(eos, list) else eos)
            return params, until, params.pop("max_tokens")

    return GuardedVLLM


# --------------------------------------------------------------------------------------------------------
# Chat-completions client (api)
# --------------------------------------------------------------------------------------------------------


class CacheUnusable(Exception):
    """The request cache file cannot be read (one line naming it)."""


class RequestCache:
    """Answers by request key, in a SQLite file, written as each answer arrives (a crash loses nothing).

    A run that ends complete marks its cache so, after its outputs and manifest are written; :func:`cache_is_complete`
    then tells the next run to start afresh (a model name may serve a new checkpoint), while an interrupted or
    incomplete run is resumed. A file that is not such a cache (garbage, truncated, a folder, another schema) is moved
    aside to ``<name>.corrupt-<n>`` with one printed line, and the run starts with an empty cache."""

    SCHEMA = {"answers": ["key", "answer"], "meta": ["name", "value"]}

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        if path.exists() or path.is_symlink():
            problem = _cache_problem(path, self.SCHEMA)
            if problem:
                aside = _move_aside(path)
                print(f"tgpo eval: {path} is not a usable request cache ({problem}); moved to {aside.name}, starting "
                      "with an empty cache")
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            self._db.commit()
        except sqlite3.Error as e:
            raise CacheUnusable(f"request cache {path} cannot be opened ({e})") from None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, answer: str) -> None:
        self.put_many([(key, answer)])

    def put_many(self, items: list[tuple[str, str]]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?)", items)
            self._db.commit()

    def mark_complete(self) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _cache_problem(path: Path, schema: Mapping[str, list[str]]) -> str | None:
    """Why ``path`` is not a request cache, or ``None`` when it is one."""
    if not path.is_file():
        return "not a file"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                return "damaged"
            for table, columns in schema.items():
                found = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
                if found and found != columns:
                    return f"table {table} has columns {found}, not {columns}"
        finally:
            db.close()
    except sqlite3.Error as e:
        return str(e)
    return None


def _move_aside(path: Path) -> Path:
    n = 1
    while (aside := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    path.rename(aside)
    return aside


def cache_is_complete(path: Path) -> bool:
    """Whether the cache at ``path`` belongs to a run that finished with every answer."""
    if not path.is_file():
        return False
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
    """A response that came back but cannot be used (retried, then counted as missing); ``wait``: the server's
    ``Retry-After`` in seconds, if it sent one."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class _Refused(Exception):
    pass


#: HTTP statuses worth retrying: timeouts, conflicts, too early, rate limits (and every 5xx).
RETRY_STATUSES = {408, 409, 425, 429}
#: The longest ``Retry-After`` honoured, in seconds (a longer one is waited this long).
RETRY_AFTER_MAX = 600.0


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ChatCompletionsClient(LocalChatCompletion):
    """``local-chat-completions`` with a per-sample cache, configurable retries and honest failure counts.

    Args (besides lm-eval's): ``max_retries``: retries after the first attempt; ``retry_wait``: seconds before
    the first retry, doubling up to ``retry_wait_max`` (a ``Retry-After`` header wins, up to
    :data:`RETRY_AFTER_MAX`); ``timeout``: seconds per request; ``cache_path``: the SQLite answer cache (``None``: no
    cache). Every request carries every sampling field (:func:`~tgpo.eval.protocol.api_fields`). The ``model`` each
    response names is counted in ``served_models`` (a name other than the one asked for is warned about once), and
    sampling fields a server echoes back are kept in ``echoed``.
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
        self.served_models: Counter[str] = Counter()  # the "model" of each response
        self.echoed: dict[str, Any] = {}  # sampling fields the server echoed, as last seen
        self.cached = 0
        self.sent = 0
        self._local = threading.local()
        self._stop = threading.Event()
        self._warned_model = False

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
            raise _Unusable(f"HTTP {response.status_code}", retry_after(response.headers.get("Retry-After")))
        try:
            body = response.json()
            content = body["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Unusable("unexpected response schema") from None
        if not isinstance(content, str):
            raise _Unusable("no content")
        self._note_response(body, payload)
        return postprocess_generated_text(content, stop=None, think_end_token=self.think_end_token)

    def _note_response(self, body: dict, payload: dict) -> None:
        served = str(body.get("model") or "")
        self.served_models[served or "(none)"] += 1
        if served and served != self.model and not served.startswith(f"{self.model}-") and not self._warned_model:
            self._warned_model = True
            log.warning("the server answered as model %r, not %r (recorded in the manifest)", served, self.model)
            print(f"tgpo eval: the server answers as model {served!r}, not the requested {self.model!r}; "
                  "the scores are that model's (recorded in the manifest)", file=sys.stderr)
        from tgpo.eval.protocol import api_fields

        for field in api_fields(_NEUTRAL_ECHO):
            if field in body:
                self.echoed[field] = body[field]

    def _answer_with_retries(self, payload: dict) -> tuple[str | None, str]:
        """``(answer, "")`` or ``(None, last error)``; refusals propagate. Stops waiting when the run is stopped."""
        error, wait = "", None
        for attempt in range(self.retries + 1):
            if attempt:
                backoff = min(self.retry_wait * 2 ** (attempt - 1), self.retry_wait_max)
                if self._stop.wait(max(backoff, min(wait or 0.0, RETRY_AFTER_MAX))):
                    break
            try:
                return self._answer(payload), ""
            except _Unusable as e:
                error, wait = str(e), e.wait
                log.info("request failed (%s), attempt %d of %d", error, attempt + 1, self.retries + 1)
        return None, error

    # ---- the lm-eval entry point
    def _payload(self, request) -> dict:
        from tgpo.eval.protocol import api_fields, effective_settings

        messages = json.loads(request.args[0].prompt) if hasattr(request.args[0], "prompt") else request.args[0]
        fields = api_fields(effective_settings({"max_gen_toks": self._max_gen_toks}, copy.deepcopy(request.args[1])))
        return {"messages": messages, "model": self.model, **fields}

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from tqdm import tqdm

        keys = sample_keys(requests, {}, payload=self._payload)
        answers: list[str | None] = [None] * len(requests)
        todo: list[tuple[int, dict, str]] = []
        for i, (req, key) in enumerate(zip(requests, keys)):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                answers[i] = hit
                self.cached += 1
            else:
                todo.append((i, self._payload(req), key))
        if self.cached:
            log.info("%d of %d answers from the request cache; sending %d", self.cached, len(requests), len(todo))
        refused: str | None = None
        self._stop.clear()
        done = _DaemonPool(self._answer_with_retries, [(t[1],) for t in todo], max(1, self._concurrent), self._stop)
        try:
            for n, result, exc in tqdm(done, total=len(todo), disable=disable_tqdm, desc="Requesting API"):
                i, _, key = todo[n]
                if isinstance(exc, _Skipped):
                    continue
                if isinstance(exc, _Refused):
                    refused = refused or str(exc)
                    self._stop.set()
                    continue
                if exc is not None:
                    raise exc
                if refused:
                    continue
                answer, error = result
                self.sent += 1
                if answer is None:
                    self.missing[requests[i].task_name] += 1
                    self.unusable[error] += 1
                    continue
                answers[i] = answer
                if self.cache is not None:
                    self.cache.put(key, answer)
        finally:
            self._stop.set()  # on Ctrl-C the daemon threads are left to die with the process: nothing waits for them
        if refused:
            raise ServerRefused(refused)
        return [a if a is not None else "" for a in answers]


#: Any settings: only the field names of :func:`~tgpo.eval.protocol.api_fields` are read from it.
_NEUTRAL_ECHO = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0,
                 "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "max_gen_toks": 1,
                 "until": [], "seed": None}


class _Skipped(Exception):
    """An item not started because the pool was stopped."""


class _DaemonPool:
    """``fn(*args)`` for each item on ``workers`` daemon threads; iterate for ``(index, result, exception)`` as each
    finishes. Unlike ``ThreadPoolExecutor`` (whose threads the interpreter joins at exit), a hung request never keeps
    a stopped run alive: one Ctrl-C ends it at once. Once ``stop`` is set, items not yet started come back as
    :class:`_Skipped`."""

    def __init__(self, fn, items: list[tuple], workers: int, stop: threading.Event) -> None:
        import queue

        self._done: queue.Queue = queue.Queue()
        self._n = len(items)
        todo: queue.Queue = queue.Queue()
        for n, args in enumerate(items):
            todo.put((n, args))

        def work() -> None:
            while True:
                try:
                    n, args = todo.get_nowait()
                except queue.Empty:
                    return
                if stop.is_set():
                    self._done.put((n, None, _Skipped()))
                    continue
                try:
                    self._done.put((n, fn(*args), None))
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    self._done.put((n, None, e))

        for _ in range(min(workers, self._n)):
            threading.Thread(target=work, daemon=True, name="tgpo-eval-request").start()

    def __iter__(self):
        import queue

        for _ in range(self._n):
            while True:
                try:
                    yield self._done.get(timeout=0.2)  # short waits: a Ctrl-C lands between them
                    break
                except queue.Empty:
                    continue


def _error_message(response) -> str:
    try:
        body = response.json()
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("message")
        message = message or body.get("detail") or body
    except ValueError:
        message = response.text
    return " ".join(str(message).split())[:500]
