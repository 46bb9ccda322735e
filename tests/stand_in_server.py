"""A tiny OpenAI-compatible chat-completions server for tests (standard library only).

It answers each problem from a lookup ``problem text -> (gold answer, kind)``. ``mode`` is the answer style:

- ``right`` / ``wrong``: boxed after a closed think block (choice: ``ANSWER: X``);
- ``boxed``: right, boxed after a closed think block, choices too (``\\boxed{X}``): both grades accept it;
- ``truncated``: a think block that never closes;
- ``loose``: right, but only in the styles the authors' grader accepts and the strict one does not: a boxed
  answer inside a think block that never closes, or a closed think block then ``**Final Answer:** $x$`` with
  no box (alternating);
- ``sampled``: right or wrong at random, with a random tag in the text; the randomness is seeded with the
  request's ``seed`` when it sends one (as vLLM honours seeds), else fresh per request.

Faults, combinable with any mode: ``fault="http500_alternate"`` (every other request gets HTTP 500),
``"schema"`` (valid JSON without ``choices``), ``"null"`` (``content: null``), ``"http500"`` (always 500);
``"ratelimit"`` (HTTP 429 with ``Retry-After: <retry_after>`` for every request that arrives within ``retry_after``
seconds of the first one); ``delay`` seconds before each answer; ``hang_after``: every request after the first
``hang_after`` hangs (a minute); ``context_limit``: requests asking for more ``max_tokens`` are refused with HTTP
400 and vLLM's message. ``served_model``: the ``model`` every response names (default: the requested one).

``generation_defaults``: what a vLLM server takes from a model's generation config for the sampling fields a request
leaves out. The effective settings change the reply as they would a real model's: ``repetition_penalty`` other
than 1 or ``top_k`` 1 gives a wrong answer, and (with defaults given) the text is cut to ``max_tokens`` characters. ``echo``: each
response repeats the effective sampling settings at its top level. Every request body is kept in
``server.requests``.

    with StandInServer(lookup, mode="right") as srv:
        srv.base_url  # http://127.0.0.1:<port>/v1/chat/completions
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LETTERS = "ABCDEFGHIJ"
MODES = ("right", "wrong", "boxed", "truncated", "loose", "sampled")
FAULTS = (None, "http500_alternate", "http500", "schema", "null", "ratelimit")
SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty",
            "max_tokens", "stop", "seed")


def wrong_answer(gold: str, kind: str) -> str:
    if kind == "choice":
        g = gold.strip().upper()
        return "B" if g == "A" else "A"
    return "\\text{no idea}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # /v1/models
        self._send(200, {"object": "list", "data": [{"id": "stand-in", "object": "model"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "bad json"}})
            return
        srv = self.server
        with srv.lock:
            srv.requests.append(req)
            srv.counter += 1
            count = srv.counter
            srv.first = srv.first or time.monotonic()
        if srv.hang_after is not None and count > srv.hang_after:
            time.sleep(60)
            return
        if srv.fault == "ratelimit" and time.monotonic() - srv.first < srv.retry_after:
            self.send_response(429)
            self.send_header("Retry-After", f"{srv.retry_after:g}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if srv.delay:
            time.sleep(srv.delay)
        limit = srv.context_limit
        if limit is not None and int(req.get("max_tokens") or 0) > limit:
            self._send(400, {"object": "error", "message": (
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{req.get('max_tokens')} tokens in the completion. Please reduce the length of the messages or completion."
            ), "type": "BadRequestError", "code": 400})
            return
        if srv.fault == "http500" or (srv.fault == "http500_alternate" and count % 2 == 1):
            self._send(500, {"error": {"message": "internal error (stand-in)"}})
            return
        if srv.fault == "schema":
            self._send(200, {"id": f"x-{count}", "result": "the answer is 4"})
            return
        messages = req.get("messages") or []
        user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        if isinstance(user, list):  # content parts
            user = "".join(p.get("text", "") for p in user if isinstance(p, dict))
        effective = {**srv.generation_defaults, **{k: req[k] for k in SAMPLING if k in req}}
        content = None if srv.fault == "null" else srv.reply(str(user), count, req.get("seed"), effective)
        n = int(req.get("n") or 1)
        self._send(
            200,
            {
                "id": f"chatcmpl-{count}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": srv.served_model or req.get("model", "stand-in"),
                **(effective if srv.echo else {}),
                "choices": [
                    {"index": i, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                    for i in range(n)
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, lookup, mode, fault, delay, context_limit, generation_defaults=None, echo=False,
                 served_model=None, hang_after=None, retry_after=1.0) -> None:
        super().__init__(addr, _Handler)
        self.generation_defaults = dict(generation_defaults or {})
        self.echo = echo
        self.served_model = served_model
        self.hang_after = hang_after
        self.retry_after = retry_after
        self.first = 0.0
        self.lookup = {k.strip(): v for k, v in lookup.items()}
        self.mode = mode
        self.fault = fault
        self.delay = delay
        self.context_limit = context_limit
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.counter = 0
        self.unknown = 0

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up waiting (the slow mode's timeouts): not an error of the server
        super().handle_error(request, client_address)

    def _find(self, user: str) -> tuple[str, str] | None:
        hit = self.lookup.get(user.strip())
        if hit is not None:
            return hit
        for problem, value in self.lookup.items():  # the prompt may wrap the problem
            if problem and problem in user:
                return value
        return None

    def reply(self, user: str, count: int, seed, effective: dict | None = None) -> str:
        text = self._reply(user, count, seed, effective or {})
        limit = (effective or {}).get("max_tokens") if self.generation_defaults else None
        return text if limit is None else text[: int(limit)]

    def _reply(self, user: str, count: int, seed, effective: dict) -> str:
        hit = self._find(user)
        if hit is None:
            with self.lock:
                self.unknown += 1
            return "I do not know this problem."
        gold, kind = hit
        bare = re.sub(r"(?<!\\)\$", "", gold)  # "$69$,$84$" boxes as 69,84
        think = f"<think>\nSample {count}: let me work this out carefully.\n</think>\n"
        if self.mode == "truncated":
            return f"<think>\nSample {count}: the answer is \\boxed{{{bare}}} ... still thinking"
        if self.mode == "loose":
            if kind == "choice" or count % 2 == 0:
                return f"<think>\nSample {count}: so the answer must be \\boxed{{{bare}}}, let me double-check"
            return f"{think}**Final Answer:** ${bare}$"
        if self.mode == "boxed":
            return f"{think}So the final answer is $\\boxed{{{bare}}}$."
        right = self.mode == "right" and effective.get("repetition_penalty", 1.0) == 1.0 and effective.get("top_k") != 1
        tag = ""
        if self.mode == "sampled":  # the reply depends on the draw only: one seed, one reply
            rng = random.Random(f"{seed}|{user}") if seed is not None else random.Random()
            right = rng.random() < 0.5
            tag = f" (draw {rng.randrange(10**9)})"
            think = "<think>\nLet me work this out carefully.\n</think>\n"
        answer = bare if right else re.sub(r"(?<!\\)\$", "", wrong_answer(gold, kind))
        if kind == "choice":
            return f"{think}The correct option follows from the reasoning{tag}.\nANSWER: {answer}"
        return f"{think}Therefore{tag} the final answer is $\\boxed{{{answer}}}$."


class StandInServer:
    """Context manager running :class:`_Server` on 127.0.0.1 in a daemon thread."""

    def __init__(
        self,
        lookup: dict[str, tuple[str, str]],
        mode: str = "right",
        *,
        fault: str | None = None,
        delay: float = 0.0,
        context_limit: int | None = None,
        **options,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, not {fault!r}")
        self.server = _Server(("127.0.0.1", 0), lookup, mode, fault, delay, context_limit, **options)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1/chat/completions"

    @property
    def requests(self) -> list[dict]:
        return self.server.requests

    def __enter__(self) -> StandInServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def lookup_from_rows(rows_by_benchmark: dict[str, list[dict]], choice_benchmarks) -> dict[str, tuple[str, str]]:
    """``problem -> (answer, kind)`` for every row of every benchmark."""
    out: dict[str, tuple[str, str]] = {}
    for name, rows in rows_by_benchmark.items():
        kind = "choice" if name in choice_benchmarks else "math"
        for r in rows:
            out[r["problem"]] = (r["answer"], kind)
    return out
