"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: scripted replies and faults.

Tests talk to it through litellm over real sockets, so retries, timeouts and error mapping are
exercised the way they run against vLLM, llama.cpp or a hosted provider.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAIServer", "FakeReply", "Responder", "ScriptedResponder", "by_model"]


@dataclass
class FakeReply:
    """One scripted answer; anything but `content` describes a fault or a quirk."""

    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: str | None = None
    """Sent verbatim instead of a JSON completion (malformed bodies, empty choices, ...)."""
    finish_reason: str = "stop"
    usage: dict[str, Any] | None = None
    hang: bool = False
    """Hold the connection open without answering until the server closes."""


Responder = Callable[[dict[str, Any]], "str | FakeReply"]


class ScriptedResponder:
    """Returns the given replies in order, one per request; the last one repeats when exhausted."""

    def __init__(self, replies: Iterable[str | FakeReply]) -> None:
        self._replies = list(replies)
        if not self._replies:
            raise ValueError("ScriptedResponder needs at least one reply")
        self._next = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str | FakeReply:
        with self._lock:
            reply = self._replies[min(self._next, len(self._replies) - 1)]
            self._next += 1
            return reply


def by_model(routes: Mapping[str, Responder], default: Responder | None = None) -> Responder:
    """Dispatches on the `model` field of the request (the served name, without `openai/`)."""

    def respond(body: dict[str, Any]) -> str | FakeReply:
        handler = routes.get(str(body.get("model")), default)
        if handler is None:
            return FakeReply(
                status=404,
                raw_body=json.dumps(
                    {"error": {"message": f"model {body.get('model')!r} not found"}}
                ),
            )
        return handler(body)

    return respond


def _default_usage(body: dict[str, Any], content: str) -> dict[str, int]:
    chars = sum(len(str(m.get("content") or "")) for m in body.get("messages") or [])
    prompt, completion = chars // 4 + 1, len(content) // 4 + 1
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections when tests fire 64 requests at once.
    request_queue_size = 256
    owner: FakeOpenAIServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each keep-alive reply stalls ~40 ms
    # on the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        if (extra := self.server.owner.routes.get(self.path.rstrip("/"))) is not None:
            self._send(200, json.dumps(extra), {})
        elif self.path.rstrip("/") in ("/v1/models", "/models"):
            data = {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
            self._send(200, json.dumps(data), {})
        else:
            self._send(404, json.dumps({"error": {"message": "not found"}}), {})

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if (extra := owner.routes.get(self.path.rstrip("/"))) is not None:
            self._send(200, json.dumps(extra), {})
            return
        if self.path.split("?")[0].rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}), {})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, json.dumps({"error": {"message": "request body is not JSON"}}), {})
            return
        owner._record(body, dict(self.headers))
        reply = owner.responder(body)
        if isinstance(reply, str):
            reply = FakeReply(content=reply)
        if reply.hang:
            # Waiting on the stop event (not sleeping) lets close() release hung requests at once.
            owner._stop.wait()
            self.close_connection = True
            return
        if reply.delay_s and owner._stop.wait(reply.delay_s):
            self.close_connection = True
            return
        if reply.raw_body is not None:
            text = reply.raw_body
        elif reply.status >= 400:
            text = json.dumps(
                {
                    "error": {
                        "message": reply.content or f"fake error {reply.status}",
                        "type": "fake",
                    }
                }
            )
        else:
            text = json.dumps(owner._completion(body, reply))
        self._send(reply.status, text, reply.headers)

    def _send(self, status: int, text: str, headers: Mapping[str, str]) -> None:
        data = text.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its own timeout); nothing to report.
            self.close_connection = True


class FakeOpenAIServer:
    """Serves `POST /v1/chat/completions`, `GET /v1/models` and any `routes` from a daemon thread.

    `responder(body)` returns the reply text or a `FakeReply`. `base_url` ends in `/v1`, ready to be
    passed to litellm as `api_base` with a model `openai/<anything>`.
    """

    def __init__(
        self, responder: Responder | str = "ok", routes: Mapping[str, Any] | None = None
    ) -> None:
        if isinstance(responder, str):
            text = responder
            self.responder: Responder = lambda _body: text
        else:
            self.responder = responder
        self.routes = dict(routes or {})
        """Other routes (GET or POST) and the JSON each answers: how llama.cpp's server, LM
        Studio, Ollama and vLLM describe their model (`/props`, `/api/show`, ...)."""
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> FakeOpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)

    def _completion(self, body: dict[str, Any], reply: FakeReply) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": reply.usage
            if reply.usage is not None
            else _default_usage(body, reply.content),
        }

    def close(self) -> None:
        """Stops serving; hung and delayed requests are released rather than waited for."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
