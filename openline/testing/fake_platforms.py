"""A fake messenger platform on loopback: real HTTP, records what Openline sends.

Tests point Openline's platform base URLs (OPENLINE_TELEGRAM_API_URL, OPENLINE_GRAPH_API_URL,
OPENLINE_VIBER_API_URL) at ``FakePlatform.base_url`` and set answers per route: a default
answer (``route``) and one-shot answers served first, in order (``queue``), so a test can say
"429 with retry_after 1, then success".
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# A copy of the shared wire-format fixtures, so a fresh clone tests without ../shared.
FIXTURES = Path(__file__).resolve().parent / "messenger_fixtures"


def fixture(name: str) -> Any:
    """Load a shared messenger fixture without its ``_doc`` key."""
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data.pop("_doc", None)
    return data


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes/str sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (timeouts)


Responder = Callable[[Recorded], Answer]


class FakePlatform:
    """One loopback HTTP server standing in for Telegram, Graph (WhatsApp/Messenger) or Viber."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: list[tuple[str, re.Pattern[str], Responder]] = []
        self._queued: list[tuple[str, re.Pattern[str], Answer]] = []
        self._lock = threading.Condition()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                answer = platform._answer(recorded)
                if answer.delay:
                    time.sleep(answer.delay)
                if isinstance(answer.body, bytes | str):
                    payload = answer.body.encode() if isinstance(answer.body, str) else answer.body
                    ctype = "text/plain"
                else:
                    payload = json.dumps(answer.body).encode()
                    ctype = "application/json"
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def route(self, method: str, path: str, answer: Answer | Responder | Any) -> None:
        """Answer requests whose path matches the regex ``path`` (full match) by default."""
        responder: Responder
        if callable(answer):
            responder = answer
        else:
            fixed = answer if isinstance(answer, Answer) else Answer(body=answer)
            responder = lambda _request: fixed  # noqa: E731
        self._routes.insert(0, (method.upper(), re.compile(path), responder))

    def queue(self, method: str, path: str, *answers: Answer) -> None:
        """Serve these answers once each, in order, before the route's default answer."""
        with self._lock:
            for answer in answers:
                self._queued.append((method.upper(), re.compile(path), answer))

    def _answer(self, recorded: Recorded) -> Answer:
        with self._lock:
            self.requests.append(recorded)
            self._lock.notify_all()
            for i, (method, pattern, answer) in enumerate(self._queued):
                if method == recorded.method and pattern.fullmatch(recorded.path):
                    del self._queued[i]
                    return answer
        for method, pattern, responder in self._routes:
            if method == recorded.method and pattern.fullmatch(recorded.path):
                return responder(recorded)
        return Answer(status=404, body={"ok": False, "error_code": 404, "description": "Not Found"})

    def calls(self, path: str, method: str = "POST") -> list[Recorded]:
        """The recorded requests to ``path`` (regex, full match)."""
        pattern = re.compile(path)
        with self._lock:
            return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def wait_for(self, path: str, count: int = 1, method: str = "POST", timeout: float = 15.0):
        """Wait until ``count`` requests reached ``path``; return them (fails the test if not)."""
        deadline = time.monotonic() + timeout
        pattern = re.compile(path)
        with self._lock:
            while True:
                found = [
                    r for r in self.requests if r.method == method and pattern.fullmatch(r.path)
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{count} {method} {path} expected, got {len(found)}: "
                        f"{[(r.method, r.path) for r in self.requests]}"
                    )
                self._lock.wait(left)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
