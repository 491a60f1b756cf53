"""A lean ASGI path for messenger webhooks: the same view, without the console's middleware.

Platforms post every event to ``/hooks/<kind>/<token>/``. Through Django's handler each request
waits its turn on the process's one thread for sync code, mostly waiting for the commit of its
single INSERT; here the view runs on a small thread pool, so a process keeps several commits in
flight. Nothing else changes: the view (openline.connectors.webhooks.webhook) still verifies,
limits the body, stores and answers; the trusted-proxy middleware still wraps this path. The
console's middleware (sessions, CSRF, sign-in timeouts) has nothing to do on a signed,
cookie-less platform request.
"""

from __future__ import annotations

import io
import logging
import re

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections

from openline.connectors.webhooks import MAX_BODY, webhook
from openline.core import unavailable

log = logging.getLogger(__name__)

ROUTE = re.compile(r"/hooks/(?P<kind>[-a-zA-Z0-9_]+)/(?P<token>[^/]+)/")


def _run(request: ASGIRequest, kind: str, token: str):
    # What Django's request_started/request_finished do: fresh or pooled connections only.
    close_old_connections()
    try:
        return webhook(request, kind, token)
    finally:
        close_old_connections()


async def _read_body(receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class WebhookFastPath:
    """Serve ``/hooks/<kind>/<token>/`` on a thread pool; hand everything else to ``app``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        match = ROUTE.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _answer(
                send,
                413,
                [(b"content-type", b"application/json")],
                b'{"error": "request body too large"}',
            )
            return
        if unavailable.breaker.is_open:
            # The database is known down: the platform retries after Retry-After.
            await _answer(send, *unavailable.asgi_answer(unavailable.DOWN, scope["path"]))
            return
        request = ASGIRequest(scope, io.BytesIO(body))
        try:
            response = await sync_to_async(_run, thread_sensitive=False)(
                request, match["kind"], match["token"]
            )
        except Exception as exc:  # noqa: BLE001 - answer like Django would, without a page
            reason = unavailable.note_failure(exc)
            if reason is not None:
                log.warning("messenger webhook: 503 (%s: %s)", reason, type(exc).__name__)
                await _answer(send, *unavailable.asgi_answer(reason, scope["path"]))
                return
            log.exception("messenger webhook failed")
            await _answer(
                send, 500, [(b"content-type", b"application/json")], b'{"error": "server error"}'
            )
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
        await _answer(send, response.status_code, headers, response.content)
