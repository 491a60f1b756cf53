"""The widget's chat start answered on the event loop: the view's checks, one statement, the answer.

For a new visitor (no token, no session cookie) on PostgreSQL, ``WidgetStartFastPath`` asks
``answer`` first. It runs the checks of ``views.start`` that need no database, with the view's
own functions (origin, body size, Idempotency-Key, JSON, fields, ``check_text``), the start
rate limit per client IP (``openline.core.ip`` through the trusted proxies only), then
``capture_pg.capture`` (one statement). The answer is the view's (``_started_response`` with
``never_cache``), passed through the same middleware stack the view's answer passes through,
so its headers are the same. The capture's events go out on this loop's publisher, sealing
and webhook delivery are scheduled as after an ORM commit.

Anything else — a token, bad input, a channel that is not a live chat, a consent text that
changed, a known Idempotency-Key, an error that is not an outage — returns None and the
request goes to the Django view, which answers it (with a flag in ``META`` when the rate
limit was already counted here, so no start is counted twice).

An unreachable database (``psycopg.OperationalError``, ``PoolTimeout``), a read-only or a full
one answer 503 with ``Retry-After``, as ``openline.core.unavailable`` answers the widget.
"""

from __future__ import annotations

import asyncio
import logging
import os

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.cache import add_never_cache_headers
from django.utils.module_loading import import_string
from psycopg_pool import PoolTimeout

from openline.conversations import events
from openline.conversations.actions.common import ActionError, check_text
from openline.core import pgasync, unavailable
from openline.core.ip import request_client_ip
from openline.livechat import capture_pg, limits, tokens, views

log = logging.getLogger(__name__)

# OPENLINE_CAPTURE_FAST=0 sends every chat start through the Django view (the ORM path).
ENABLED = os.environ.get("OPENLINE_CAPTURE_FAST", "1").strip() != "0"
_RESPONSE = "_openline_lean_response"
_OUTAGE_MIDDLEWARE = "openline.core.unavailable.UnavailableMiddleware"


def enabled() -> bool:
    """True when new visitors' starts take the one-statement path (PostgreSQL, not switched off)."""
    return ENABLED and pgasync.available()


class _Stack:
    """``settings.MIDDLEWARE`` around a view that returns the answer already made.

    The outage middleware is left out: its request-side check runs before the statement
    (``answer`` asks the breaker first), and after the commit nothing may turn a stored
    capture into a 503 that says nothing was saved.
    """

    def __init__(self) -> None:
        def view(request: HttpRequest) -> HttpResponse:
            return getattr(request, _RESPONSE)

        handler = view
        for path in reversed(settings.MIDDLEWARE):
            if path == _OUTAGE_MIDDLEWARE:
                continue
            handler = import_string(path)(handler)
        self.handler = handler
        # The request-phase refusals that need no database: an HTTPS redirect, a bad host.
        self.security = SecurityMiddleware(view)
        self.common = CommonMiddleware(view)

    def refuses(self, request: HttpRequest) -> bool:
        return (
            self.security.process_request(request) is not None
            or self.common.process_request(request) is not None
        )

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """The answer with the headers the middleware adds; never another answer instead."""
        add_never_cache_headers(response)  # views.start is @never_cache
        setattr(request, _RESPONSE, response)
        try:
            finished = self.handler(request)
        except Exception:  # noqa: BLE001 - the answer is made: send it as it is
            log.exception("chat start: the middleware failed on a finished answer")
            return response
        if finished.status_code != response.status_code:
            # A middleware refused after the statement ran: the client must learn the truth.
            log.error(
                "chat start: middleware answered %s for a %s",
                finished.status_code,
                response.status_code,
            )
            return response
        return finished


_stack: _Stack | None = None


def _code(path: str) -> str:
    return path.split("/")[2]


async def answer(request: HttpRequest) -> HttpResponse | None:
    """Answer a new visitor's start in one statement, or None for the Django view."""
    global _stack
    if unavailable.breaker.is_open or settings.SESSION_COOKIE_NAME in request.COOKIES:
        return None
    if tokens.bearer(request) or len(request.body) > views.MAX_BODY:
        return None
    if _stack is None:
        _stack = _Stack()
    stack = _stack
    try:
        if stack.refuses(request) or not views._same_origin(request):
            return None
        idempotency = views.read_idempotency(request)
        data = views.read_start_json(request)
        fields = views.start_fields(request, data)
        text, client_id = check_text(fields.text, fields.client_id)
    except (views.BadStart, ActionError):
        return None
    except Exception:  # noqa: BLE001 - e.g. DisallowedHost: the view's stack answers it
        return None
    start = capture_pg.Start(
        code=_code(request.path),
        accepted=fields.accepted,
        page_url=fields.page_url,
        ip=request_client_ip(request),
        user_agent=fields.user_agent,
        language=fields.language,
        text=text,
        client_id=client_id,
        idempotency=idempotency,
    )
    try:
        state = await capture_pg.channel(start.code)
    except capture_pg.Stale:
        return None
    except Exception as exc:  # noqa: BLE001 - the view reads again and answers
        log.info("chat start: channel not read here (%s)", type(exc).__name__)
        return None
    # The view's order: the channel, then the rate limit, then the consent text.
    if not await limits.STARTS_PER_IP.aallow(start.ip or "unknown"):
        return stack.finish(
            request,
            views._json_error(429, "rate_limited", "Too many chats started; wait a moment."),
        )
    request.META[views.START_COUNTED] = True
    try:
        shown = await capture_pg.shown_text(
            state, start.accepted.language if start.accepted else start.language
        )
    except capture_pg.Stale:
        return None
    except Exception as exc:  # noqa: BLE001 - the view reads again and answers
        log.info("chat start: consent text not read here (%s)", type(exc).__name__)
        return None
    if not capture_pg.offered(state, shown, start.accepted):
        return None  # consent_required / consent_changed: the view answers 409
    try:
        started, published, delivered = await capture_pg.capture(start, state, shown)
    except (capture_pg.Stale, capture_pg.KnownKey, ValidationError):
        return None
    except (psycopg.Error, PoolTimeout) as exc:
        return _failed(request, stack, exc)
    # Committed: from here on the answer is 201 whatever else fails.
    made = views._started_response(state.channel, started)
    response = stack.finish(request, made)
    try:
        for groups in published:
            events.send_now(groups)
        _after_commit(sealing=started.record is not None, delivered=delivered)
    except Exception:  # noqa: BLE001 - the sweeps seal and deliver what was not scheduled
        log.exception("chat start: stored, but its events or follow-up work failed")
    return response


def _failed(request: HttpRequest, stack: _Stack, exc: Exception) -> HttpResponse | None:
    """An outage answers 503 (and feeds the breaker); any other database error: the view.

    The statement is its own transaction, so a failed one wrote nothing. PostgreSQL's own
    refusals that are not outages (a statement timeout, a deadlock, a lock wait) go to the
    view, which answers them as it answers them on the ORM path.
    """
    reason = unavailable.note_failure(exc)
    unreachable = isinstance(exc, PoolTimeout) or (
        isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None
    )
    if reason is None and unreachable:
        reason = unavailable.DOWN
        unavailable.breaker.suspect()
    if reason is None:
        log.warning("chat start: statement refused (%s); the view answers", type(exc).__name__)
        return None
    log.warning("POST %s: 503 (%s: %s)", request.path, reason, type(exc).__name__)
    return stack.finish(request, unavailable.unavailable_response(reason, path=request.path))


# ----- after the commit: sealing and webhook delivery, as the ORM path's on_commit hooks -----


def _after_commit(*, sealing: bool, delivered: int) -> None:
    loop = asyncio.get_running_loop()
    if sealing:
        from openline.consent import tasks as consent_tasks

        # schedule_sealing answers from memory within its window; only a due run needs a thread.
        if consent_tasks.sealing_due():
            loop.run_in_executor(None, capture_pg.in_thread, consent_tasks.schedule_sealing)
    if delivered:
        from openline.webhooks.tasks import kick_soon

        kick_soon()
