"""Answers while the database (or Redis) is down, read-only or full: a fast 503, never a 500.

Contract: every HTTP entry point answers **503** with ``Retry-After`` and a clear message —
``{"code": "unavailable", "detail": ...}`` under ``/api/``, a plain page for browsers, and
``{"error": "unavailable", "message": ...}`` for the widget, the hooks and other JSON clients.
Websockets get an ``error`` frame with code ``unavailable`` and close with 1013 (try again
later); ``openline.conversations.protocol`` does that part.

Nothing is half-written: each write runs in one transaction, which the failure rolls back.

Failing fast: while PostgreSQL is down, psycopg's pool makes each request wait its whole
``timeout`` for a connection, and Django runs sync views one at a time per process, so
requests would queue behind each other's waits. The first failure starts a probe connection
(in a thread of its own); if it cannot reach the database either, a per-process breaker opens:
until the probe (every ``PROBE_EVERY`` seconds) reaches the database again, requests are
answered 503 at once. A busy pool whose probe succeeds opens nothing. The breaker only
opens for a database that cannot be reached; a read-only or full database still serves reads.
"""

from __future__ import annotations

import html
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, InternalError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

logger = logging.getLogger(__name__)

DOWN = "database"  # cannot reach the database (stopped, restarting, network, pool timeout)
READ_ONLY = "read_only"  # the database refuses writes (hot standby, read-only mode)
FULL = "full"  # the disk or the database is full
REALTIME = "realtime"  # Redis (the channel layer) is unreachable

MESSAGES = {
    DOWN: "Openline cannot reach its database right now. Try again in a few seconds.",
    READ_ONLY: "Openline's database accepts no changes right now (maintenance or failover); "
    "nothing was saved. Try again in a few seconds.",
    FULL: "Openline's database is out of space; nothing was saved. Try again later.",
    REALTIME: "Openline's real-time service is unavailable right now; reconnecting.",
}
RETRY_AFTER = {DOWN: 5, READ_ONLY: 5, FULL: 30, REALTIME: 5}

# How often the breaker's probe tries the database while it is open, and how long it waits.
PROBE_EVERY = 0.5
PROBE_SECONDS = 2
# Paths answered whatever the database does: liveness, readiness, static files.
EXEMPT_PREFIXES = ("/healthz", "/readyz", "/static/")

_READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction
_DISK_FULL_SQLSTATE = "53100"  # disk_full
# admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
_DOWN_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _chain(exc: BaseException | None):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def classify(exc: BaseException | None) -> str | None:
    """Tell why ``exc`` means a service is unavailable (DOWN, READ_ONLY, FULL, REALTIME), or None."""
    for item in _chain(exc):
        sqlstate = getattr(getattr(item, "diag", None), "sqlstate", None) or getattr(
            item, "sqlstate", None
        )
        if sqlstate == _READ_ONLY_SQLSTATE:
            return READ_ONLY
        if sqlstate == _DISK_FULL_SQLSTATE:
            return FULL
        if isinstance(item, sqlite3.OperationalError):
            text = str(item).lower()
            if "readonly" in text or "read-only" in text:
                return READ_ONLY
            if "full" in text:
                return FULL
    for item in _chain(exc):
        sqlstate = getattr(item, "sqlstate", None)
        if sqlstate:
            # PostgreSQL answered: an outage only if it says it cannot serve (connection
            # exceptions, shutting down, too many connections); a deadlock, a serialization
            # failure or a statement timeout is the query's problem, not an outage.
            return DOWN if sqlstate.startswith("08") or sqlstate in _DOWN_SQLSTATES else None
    for item in _chain(exc):
        if isinstance(item, OperationalError | InterfaceError):
            return DOWN
        if type(item).__name__ == "PoolTimeout":  # psycopg_pool's, if it was not wrapped
            return DOWN
        if isinstance(item, InternalError | DatabaseError):
            continue
        if _is_redis_unreachable(item):
            return REALTIME
    return None


def _is_redis_unreachable(exc: BaseException) -> bool:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


# ----- the breaker ---------------------------------------------------------------------------


def probe_database(alias: str = "default", seconds: float = PROBE_SECONDS) -> bool:
    """Run ``SELECT 1`` on a connection of its own, failing within about ``seconds``.

    Return whether the database is read-only (PostgreSQL: a hot standby or
    ``default_transaction_read_only``); raise when it cannot be reached.
    """
    connection = connections[alias]
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return False
    import psycopg

    # Not from the pool: the pool waits its full timeout for a database that is down, and a
    # busy pool is not a database that is down.
    params = connection.get_connection_params()
    params["connect_timeout"] = max(1, round(seconds))
    with psycopg.connect(**params) as probe:
        probe.execute(f"SET statement_timeout = {int(seconds * 1000)}")
        row = probe.execute("SELECT current_setting('transaction_read_only')").fetchone()
    return row is not None and row[0] == "on"


# A write refused as read-only or full in this process is reported by /readyz for this long.
REFUSAL_MEMORY = 30.0
_refusals: dict[str, float] = {}


def recent_refusal() -> str | None:
    """Return READ_ONLY or FULL when a write was refused so in the last REFUSAL_MEMORY seconds."""
    now = time.monotonic()
    for reason in (FULL, READ_ONLY):
        if now - _refusals.get(reason, -REFUSAL_MEMORY) < REFUSAL_MEMORY:
            return reason
    return None


def _purge_pool(alias: str = "default") -> None:
    # Connections the pool kept across the outage are dead; drop them now rather than fail
    # one request each after the database is back.
    pool = getattr(connections[alias], "pool", None)
    if pool is not None:
        try:
            pool.check()
        except Exception as exc:  # noqa: BLE001 - the next request will tell
            logger.info("pool check after the outage failed: %s", type(exc).__name__)


class Breaker:
    """Per-process state of the database: open (down) from a failure until a probe succeeds."""

    def __init__(self, probe: Callable[[], object] = probe_database, every: float = PROBE_EVERY):
        self.probe = probe
        self.every = every
        self._lock = threading.Lock()
        self._open_since: float | None = None
        self._thread: threading.Thread | None = None
        self._checking = False

    @property
    def is_open(self) -> bool:
        return self._open_since is not None

    def trip(self) -> None:
        """Open the breaker (the database is unreachable) and start probing for its return."""
        with self._lock:
            if self._open_since is not None:
                return
            self._open_since = time.monotonic()
            logger.warning("database unreachable: answering 503 until it is back")
            self._thread = threading.Thread(
                target=self._watch, name="openline-db-breaker", daemon=True
            )
            self._thread.start()

    def suspect(self) -> None:
        """A request failed as if the database were down: probe it now, open if it is.

        A pool timeout may only mean a busy pool (connections slow to open on a loaded
        machine); opening the breaker then would refuse everything for nothing.
        """
        with self._lock:
            if self._open_since is not None or self._checking:
                return
            self._checking = True
        threading.Thread(target=self._check, name="openline-db-check", daemon=True).start()

    def _check(self) -> None:
        try:
            self.probe()
            down = False
        except Exception:  # noqa: BLE001 - any failure: the database does not answer
            down = True
        finally:
            connections.close_all()
            self._checking = False
        if down:
            self.trip()

    def reset(self) -> None:
        """Close the breaker (tests; the probe thread does it when the database answers)."""
        with self._lock:
            self._open_since = None

    def _watch(self) -> None:
        while self.is_open:
            time.sleep(self.every)
            try:
                self.probe()
                back = True
            except Exception:  # noqa: BLE001 - still down; try again
                back = False
            finally:
                # The probe's thread-local Django connection (SQLite) must not linger.
                connections.close_all()
            if not back:
                continue
            _purge_pool()
            with self._lock:
                downtime = time.monotonic() - (self._open_since or time.monotonic())
                self._open_since = None
            logger.warning("database reachable again after %.1f s", downtime)
            return


breaker = Breaker()


def _postgresql(alias: str = "default") -> bool:
    return connections[alias].vendor == "postgresql"


def note_failure(exc: BaseException | None) -> str | None:
    """Classify ``exc``; an unreachable PostgreSQL opens the breaker. Return the reason."""
    reason = classify(exc)
    if reason == DOWN and _postgresql():
        breaker.suspect()
    elif reason in (READ_ONLY, FULL):
        _refusals[reason] = time.monotonic()
    return reason


def exempt(path: str) -> bool:
    """Tell whether ``path`` is answered even while the database is down."""
    return path.startswith(EXEMPT_PREFIXES)


# ----- answers --------------------------------------------------------------------------------


def body_kind(path: str, accept: str = "") -> str:
    """Pick the answer's shape for a path: "api", "page" (browsers) or "json" (widget, hooks)."""
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/hooks/") or path.endswith(("/start", "/receipt")):
        return "json"
    return "page" if "text/html" in accept else "json"


def json_body(reason: str, kind: str) -> dict:
    """The JSON body of the answer for ``reason`` in the shape ``kind`` ("api" or "json")."""
    message = MESSAGES[reason]
    if kind == "api":
        return {"code": "unavailable", "detail": message}
    return {"error": "unavailable", "message": message}


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable · Openline</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>Temporarily unavailable</h1><p>{message}</p>
<p>This page will work again without anything to do on your side: reload it in a moment.</p>
</main></body></html>
"""


def unavailable_response(reason: str, *, path: str, accept: str = "") -> HttpResponse:
    """The 503 answer for ``reason`` on ``path``, with ``Retry-After``."""
    kind = body_kind(path, accept)
    response: HttpResponse
    if kind == "page":
        # Plain inline HTML: a template's context processors could need the database.
        page = PAGE.format(message=html.escape(MESSAGES[reason]))
        response = HttpResponse(page, status=503, content_type="text/html; charset=utf-8")
    else:
        response = JsonResponse(json_body(reason, kind), status=503)
    response["Retry-After"] = str(RETRY_AFTER[reason])
    response["Cache-Control"] = "no-store"
    return response


def asgi_answer(reason: str, path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The same answer for raw ASGI paths (the hooks fast path): status, headers, body."""
    response = unavailable_response(reason, path=path)
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
    return response.status_code, headers, response.content


def _for_request(request: HttpRequest, reason: str) -> HttpResponse:
    return unavailable_response(reason, path=request.path, accept=request.headers.get("Accept", ""))


class UnavailableMiddleware:
    """Answer 503 at once while the database is known down; turn outage errors into 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if breaker.is_open and not exempt(request.path):
            return _for_request(request, DOWN)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        reason = note_failure(exception)
        if reason is None:
            return None
        logger.warning(
            "%s %s: 503 (%s: %s)", request.method, request.path, reason, type(exception).__name__
        )
        return _for_request(request, reason)


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    """``handler500``: an outage raised outside a view (a middleware, a session save) is a 503 too."""
    reason = note_failure(sys.exc_info()[1])
    if reason is not None:
        return _for_request(request, reason)
    return defaults.server_error(request, template_name=template_name)
