"""The public webhook of every messenger connector: verify, store the events once, answer fast.

``/hooks/<kind>/<webhook_token>/``: GET answers Meta's verification handshake, POST carries
events. Nothing is written before the request proved authentic; the events of one request
are stored in one statement (unique per connector and platform event id), processing happens
in a background task.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from openline.connectors.base import RawRequest, VerificationError
from openline.connectors.ingest import store_events
from openline.connectors.registry import KINDS, connector_secrets, platform_for
from openline.core import unavailable
from openline.openchannels.models import ConnectionState, Connector, OpenChannel

log = logging.getLogger(__name__)

# Platform webhook bodies are small (Meta batches stay well under this).
MAX_BODY = 1024 * 1024
# last_event_at is a "still alive" mark: at most one write per connector this often.
LAST_EVENT_EVERY = 5.0

_last_event_marks: dict[int, float] = {}
_marks_lock = threading.Lock()
# Connector look-ups by (kind, token): (expires at, connector, decrypted credentials).
CONNECTOR_TTL = 5.0
_connector_cache: dict[tuple[str, str], tuple[float, Connector, dict]] = {}
_cache_lock = threading.Lock()
# Processing kicks: at most one per connector per KICK_WINDOW seconds and process, plus one
# trailing kick at the end of a window in which more events arrived.
KICK_WINDOW = 0.5
_last_kicks: dict[int, float] = {}
_trailing: dict[int, threading.Timer] = {}
_kick_lock = threading.Lock()
# Failed signature checks, counted per connector in the shared cache (Redis in production),
# never in the database: forged requests must leave no trace in the data. One counter per
# SIGNATURE_BUCKET seconds; the page sums the buckets of the last SIGNATURE_WINDOW.
SIGNATURE_BUCKET = 600
SIGNATURE_WINDOW = 3600


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _not_found() -> HttpResponse:
    # The same answer for an unknown kind, token or a disabled connector: nothing to learn.
    return _error(404, "not found")


def _raw(request: HttpRequest, body: bytes) -> RawRequest:
    return RawRequest(
        method=request.method or "",
        headers={name.lower(): value for name, value in request.headers.items()},
        query={key: request.GET.get(key, "") for key in request.GET},
        body=body,
    )


def _read_body(request: HttpRequest) -> bytes | None:
    """The raw body bytes (never re-serialised), or None when it is over the limit."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY:
        return None
    # read() rather than .body: bounded even without a Content-Length.
    body = request.read(MAX_BODY + 1)
    return None if len(body) > MAX_BODY else body


@csrf_exempt
def webhook(request: HttpRequest, kind: str, token: str) -> HttpResponse:
    """Receive one platform request for the connector owning ``token``."""
    if kind not in KINDS or request.method not in ("GET", "POST"):
        return _not_found() if kind not in KINDS else _error(405, "method not allowed")
    if not token:
        return _not_found()
    try:
        found = _connector(kind, token)
    except Exception as exc:  # noqa: BLE001 - e.g. the key was rotated away; the platform retries
        if unavailable.classify(exc) is not None:
            raise  # the database is down: a 503 that says so (core/unavailable.py)
        log.error("%s webhook: connector credentials cannot be decrypted", kind)
        return _error(503, "connector credentials unavailable")
    if found is None:
        return _not_found()
    connector, secrets = found
    body = _read_body(request) if request.method == "POST" else b""
    if body is None:
        return _error(413, "request body too large")
    raw = _raw(request, body)
    platform = platform_for(kind)
    if request.method == "GET":
        return _handshake(connector, platform, raw)
    try:
        platform.verify(raw, secrets=secrets, config=connector.config)
    except VerificationError as exc:
        _count_signature_failure(connector.pk)
        status = exc.status if exc.status in (401, 403) else 403
        return _error(status, "signature check failed")
    # A correctly signed request proves the credentials as well as the handshake does.
    # Conditional on "pending" in the database too; skipped unless the cached connector is
    # pending, so a connected connector costs no write per request.
    if connector.state == ConnectionState.PENDING and mark_confirmed(
        connector_id=connector.pk, secrets=connector.secrets
    ):
        connector.state = ConnectionState.CONNECTED
    try:
        events = platform.parse(raw, config=connector.config)
    except Exception:  # noqa: BLE001 - whatever a malformed body breaks, it is the sender's fault
        log.info("connector %s: malformed %s webhook body", connector.pk, kind)
        return _error(400, "malformed request body")
    try:
        stored = store_events(connector=connector, events=events)
    except (ValueError, TypeError, AttributeError):
        log.info("connector %s: unusable events in a %s webhook", connector.pk, kind)
        return _error(400, "malformed request body")
    if stored:
        transaction.on_commit(lambda: _kick_soon(connector.pk))
    _mark_alive(connector.pk)
    return JsonResponse({"ok": True})


def _connector(kind: str, token: str) -> tuple[Connector, dict] | None:
    """The enabled connector owning ``token`` and its credentials, cached a few seconds.

    A platform posts every event to the same URL: looking the connector up and decrypting its
    credentials once per CONNECTOR_TTL instead of per request halves the webhook's cost. A
    connector disabled or reconnected takes effect within that time.
    """
    moment = time.monotonic()
    with _cache_lock:
        cached = _connector_cache.get((kind, token))
    if cached is not None and cached[0] > moment:
        return cached[1], cached[2]
    connector = (
        Connector.objects.select_related("channel")
        .filter(kind=kind, webhook_token=token, is_enabled=True, channel__is_active=True)
        .first()
    )
    if connector is None:
        # Unknown tokens are not cached: nobody can fill the cache with made-up ones.
        with _cache_lock:
            _connector_cache.pop((kind, token), None)
        return None
    secrets = connector_secrets(connector)
    with _cache_lock:
        if len(_connector_cache) > 1000:
            _connector_cache.clear()
        _connector_cache[(kind, token)] = (moment + CONNECTOR_TTL, connector, secrets)
    return connector, secrets


def _kick_soon(connector_id: int) -> None:
    """Start processing now, or once at the end of a short window when a burst is arriving.

    A burst of webhooks then costs one task check per window and process instead of one per
    request; the events are durable meanwhile, and messengers_run's sweep backs this up.
    """
    from openline.connectors.tasks import kick

    moment = time.monotonic()
    with _kick_lock:
        last = _last_kicks.get(connector_id, -KICK_WINDOW)
        if moment - last >= KICK_WINDOW:
            _last_kicks[connector_id] = moment
            now = True
        else:
            now = False
            if connector_id in _trailing:
                return
            timer = threading.Timer(last + KICK_WINDOW - moment, _trailing_kick, [connector_id])
            timer.daemon = True
            _trailing[connector_id] = timer
    if now:
        kick(connector_id)
    else:
        timer.start()


def _trailing_kick(connector_id: int) -> None:
    from django.db import connection

    from openline.connectors.tasks import kick

    with _kick_lock:
        _trailing.pop(connector_id, None)
        _last_kicks[connector_id] = time.monotonic()
    try:
        kick(connector_id)
    finally:
        connection.close()  # this timer thread's own connection


@receiver(post_save, sender=Connector)
@receiver(post_delete, sender=Connector)
@receiver(post_save, sender=OpenChannel)
def _forget_cached_connectors(**kwargs) -> None:
    """A change made in this process applies at once (other processes: within CONNECTOR_TTL)."""
    with _cache_lock:
        _connector_cache.clear()


def _handshake(connector, platform, raw: RawRequest) -> HttpResponse:
    # Handshakes are rare: answer from the database, never from the few-seconds cache, so a
    # verify token replaced (or a connector disconnected) in another process cannot confirm.
    connector = Connector.objects.filter(
        pk=connector.pk,
        webhook_token=connector.webhook_token,
        is_enabled=True,
        channel__is_active=True,
    ).first()
    if connector is None:
        return _not_found()
    try:
        secrets = connector_secrets(connector)
    except Exception:  # noqa: BLE001 - e.g. the key was rotated away
        return _error(503, "connector credentials unavailable")
    reply = platform.handshake(raw, secrets=secrets, config=connector.config)
    if reply is None:
        return _error(405, "method not allowed")
    if reply.status == 200:
        # Conditional on "pending" and on the credentials just checked still being saved.
        mark_confirmed(connector_id=connector.pk, secrets=connector.secrets)
    return HttpResponse(reply.body, status=reply.status, content_type="text/plain")


def mark_confirmed(*, connector_id: int, secrets: str | None = None) -> bool:
    """Move a connector waiting for the platform's confirmation to "connected".

    ``secrets`` (the stored ciphertext the request was checked against) makes the move
    conditional on those credentials still being the saved ones: a request checked against
    credentials replaced meanwhile proves nothing about the new ones.
    """
    now = timezone.now()
    waiting = Connector.objects.filter(pk=connector_id, state=ConnectionState.PENDING)
    if secrets is not None:
        waiting = waiting.filter(secrets=secrets)
    return bool(
        waiting.update(
            state=ConnectionState.CONNECTED,
            connected_at=now,
            last_error="",
            last_error_at=None,
            updated_at=now,
        )
    )


def _mark_alive(connector_id: int) -> None:
    """Note the last event time, at most once per LAST_EVENT_EVERY seconds per process."""
    moment = time.monotonic()
    with _marks_lock:
        if moment - _last_event_marks.get(connector_id, -LAST_EVENT_EVERY) < LAST_EVENT_EVERY:
            return
        _last_event_marks[connector_id] = moment
    now = timezone.now()
    # Conditional: other processes marked it moments ago -> no row changes.
    Connector.objects.filter(pk=connector_id).filter(
        Q(last_event_at__isnull=True)
        | Q(last_event_at__lt=now - dt.timedelta(seconds=LAST_EVENT_EVERY))
    ).update(last_event_at=now)


def _signature_keys(connector_id: int, *, now: float | None = None) -> list[str]:
    bucket = int((time.time() if now is None else now) // SIGNATURE_BUCKET)
    count = SIGNATURE_WINDOW // SIGNATURE_BUCKET
    return [f"connectors:sigfail:{connector_id}:{bucket - n}" for n in range(count)]


def _count_signature_failure(connector_id: int) -> None:
    """Count one failed signature check of the connector (cache only; nothing else kept)."""
    key = _signature_keys(connector_id)[0]
    try:
        cache.add(key, 0, timeout=SIGNATURE_WINDOW + SIGNATURE_BUCKET)
        cache.incr(key)
    except Exception:  # noqa: BLE001 - a counter must never break the webhook
        log.warning("connector %s: could not count a failed signature check", connector_id)


def signature_failures(*, connector_id: int) -> int:
    """Return how many requests failed the connector's signature check in the last hour."""
    try:
        counts = cache.get_many(_signature_keys(connector_id))
    except Exception:  # noqa: BLE001 - the page must render without the cache
        return 0
    return sum(int(value) for value in counts.values())


def forget_signature_failures(*, connector_id: int) -> None:
    """Reset the count: new credentials start with a clean record."""
    try:
        cache.delete_many(_signature_keys(connector_id))
    except Exception:  # noqa: BLE001 - best effort
        log.warning("connector %s: could not reset the signature failure count", connector_id)
