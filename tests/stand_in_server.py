"""A tiny OpenAI-compatible chat-completions server for tests (standard library only).

It answers each problem from a lookup ``problem text -> (gold answer, kind)``: correctly (``mode="right"``),
wrongly (``mode="wrong"``), or with a reply that never closes its think block (``mode="truncated"``).
Math answers come boxed after a think block; choice answers as ``ANSWER: X``. Every request body is kept in
``server.requests`` so tests can check what lm-eval sent (seed, temperature, messages).

    with StandInServer(lookup, mode="right") as srv:
        srv.base_url  # http://127.0.0.1:<port>/v1/chat/completions
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LETTERS = "ABCDEFGHIJ"


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
        messages = req.get("messages") or []
        user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        if isinstance(user, list):  # content parts
            user = "".join(p.get("text", "") for p in user if isinstance(p, dict))
        content = srv.reply(str(user), count)
        n = int(req.get("n") or 1)
        self._send(
            200,
            {
                "id": f"chatcmpl-{count}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": req.get("model", "stand-in"),
                "choices": [
                    {"index": i, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                    for i in range(n)
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, lookup: dict[str, tuple[str, str]], mode: str) -> None:
        super().__init__(addr, _Handler)
        self.lookup = {k.strip(): v for k, v in lookup.items()}
        self.mode = mode
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.counter = 0
        self.unknown = 0

    def _find(self, user: str) -> tuple[str, str] | None:
        hit = self.lookup.get(user.strip())
        if hit is not None:
            return hit
        for problem, value in self.lookup.items():  # the prompt may wrap the problem
            if problem and problem in user:
                return value
        return None

    def reply(self, user: str, count: int) -> str:
        hit = self._find(user)
        if hit is None:
            with self.lock:
                self.unknown += 1
            return "I do not know this problem."
        gold, kind = hit
        think = f"<think>\nSample {count}: let me work this out carefully.\n</think>\n"
        if self.mode == "truncated":
            return f"<think>\nSample {count}: the answer is \\boxed{{{gold}}} ... still thinking"
        answer = gold if self.mode == "right" else wrong_answer(gold, kind)
        answer = re.sub(r"(?<!\\)\$", "", answer)  # "$69$,$84$" boxes as 69,84
        if kind == "choice":
            return f"{think}The correct option follows from the reasoning.\nANSWER: {answer}"
        return f"{think}Therefore the final answer is $\\boxed{{{answer}}}$."


class StandInServer:
    """Context manager running :class:`_Server` on 127.0.0.1 in a daemon thread."""

    def __init__(self, lookup: dict[str, tuple[str, str]], mode: str = "right") -> None:
        if mode not in ("right", "wrong", "truncated"):
            raise ValueError(f"mode must be right, wrong or truncated, not {mode!r}")
        self.server = _Server(("127.0.0.1", 0), lookup, mode)
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
