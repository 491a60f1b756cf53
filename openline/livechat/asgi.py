"""A lean ASGI path for the widget's chat start: several captures in flight per process.

A new visitor's start on PostgreSQL is answered on the event loop in one statement
(``start_lean``, ``capture_pg``); every other start, and any start that path hands back, runs
Django's handler as described below (``OPENLINE_CAPTURE_FAST=0`` sends them all there).

``POST /widget/<code>/start`` is the consent capture: a visitor, a consent record, a
conversation and the first message in one transaction, answered after the commit. Django's
ASGI handler runs every sync view of a process on one thread, so a process waits for one
commit at a time. Here the same request goes through the same Django request path (URL
resolution, the full middleware stack, ``views.start``, error pages) on a small thread pool of
its own, so each process keeps several commits in flight. Nothing else changes: the
trusted-proxy middleware still wraps this path (the client's IP comes from
``openline.core.ip``), the view still checks the origin, rate limit, body size and input.

The body is read only up to the view's limit plus one byte, so an oversized body costs no
memory and the view still answers it 413. The event publisher is started on this loop, so the
capture's events leave over the process's kept-open channel-layer connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor

from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.base import BaseHandler
from django.db import close_old_connections

from openline.conversations import events
from openline.livechat import start_lean
from openline.livechat.views import MAX_BODY, START_COUNTED

log = logging.getLogger(__name__)

ROUTE = re.compile(r"/widget/[^/]+/start")
# Threads per process for chat starts; each holds at most one database connection from the
# pool (OPENLINE_DB_POOL_MAX, 16 by default) while it runs.
THREADS = int(os.environ.get("OPENLINE_WIDGET_START_THREADS", "") or 8)


def _handle(handler: BaseHandler, request: ASGIRequest):
    # What Django's request_started/request_finished do: fresh or pooled connections only.
    close_old_connections()
    try:
        return handler.get_response(request)
    finally:
        close_old_connections()


async def _read_body(receive, limit: int) -> bytes | None:
    """Read the request body, at most ``limit`` bytes; None if the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or not message.get("more_body", False):
            return b"".join(chunks)[:limit]


class WidgetStartFastPath:
    """Serve ``POST /widget/<code>/start`` on a thread pool; hand everything else to ``app``."""

    def __init__(self, app) -> None:
        self.app = app
        self.handler: BaseHandler | None = None
        self.executor: ThreadPoolExecutor | None = None

    def _ready(self) -> tuple[BaseHandler, ThreadPoolExecutor]:
        if self.handler is None or self.executor is None:
            handler = BaseHandler()
            handler.load_middleware(is_async=False)
            self.handler = handler
            self.executor = ThreadPoolExecutor(THREADS, thread_name_prefix="widget-start")
        return self.handler, self.executor

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not ROUTE.fullmatch(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, MAX_BODY + 1)
        if body is None:
            return
        handler, executor = self._ready()
        events.start_publisher()
        request = ASGIRequest(scope, io.BytesIO(body))
        if start_lean.enabled():
            try:
                answered = await start_lean.answer(request)
            except Exception:  # noqa: BLE001 - perhaps after its commit: never the view again
                log.exception("widget start failed on the one-statement path")
                await _answer(
                    send,
                    500,
                    [(b"content-type", b"application/json")],
                    b'{"error": "server_error"}',
                )
                return
            if answered is not None:
                await _send_response(send, answered)
                return
            counted = request.META.get(START_COUNTED) is True
            # The view gets a request of its own, as if the lean path had not looked at it.
            request = ASGIRequest(scope, io.BytesIO(body))
            if counted:
                request.META[START_COUNTED] = True
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(executor, context.run, _handle, handler, request)
        except Exception:  # noqa: BLE001 - Django's handler turns view errors into answers
            log.exception("widget start failed outside Django's error handling")
            await _answer(
                send, 500, [(b"content-type", b"application/json")], b'{"error": "server_error"}'
            )
            return
        await _send_response(send, response)


async def _send_response(send, response) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
    for cookie in response.cookies.values():
        headers.append((b"set-cookie", cookie.output(header="").strip().encode("latin-1")))
    await _answer(send, response.status_code, headers, response.content)


async def _answer(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
