"""Delivering outbox rows: claim, POST with Standard Webhooks headers, record, retry, disable.

Several workers (the task worker, ``messengers_run`` on several hosts) may run this at once:
a delivery is claimed in a short transaction (``SELECT ... FOR UPDATE SKIP LOCKED`` where the
database has it, and a conditional UPDATE everywhere) with a lease, so exactly one worker
sends it. Deliveries sharing an order key (one conversation, one client's consents, one CRM
item) go to an endpoint in the order they were written: a later one waits until every earlier
one is delivered. Receivers should still deduplicate on ``webhook-id`` (a worker that dies
between the receiver's answer and recording it leaves the row to be sent again).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time

import httpx
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from openline.webhooks import signing
from openline.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

log = logging.getLogger("openline.webhooks")

TIMEOUT = 10.0
# Seconds before each retry: 5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h (each jittered).
BACKOFF = [5, 300, 1800, 7200, 18000, 36000]
# A claim is a lease: a worker killed mid-POST leaves the row "sending" until it runs out,
# then any worker sends it again (same webhook-id). It outlasts one POST (TIMEOUT) and the
# short transaction recording it, so a live worker is never overtaken.
LEASE = dt.timedelta(seconds=TIMEOUT + 20)
DISABLE_AFTER = dt.timedelta(days=5)
ERROR_LENGTH = 300


def backoff(attempts: int) -> dt.timedelta:
    """The wait before the next try after ``attempts`` failed tries, with +-10 % jitter."""
    base = BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]
    return dt.timedelta(seconds=base * random.uniform(0.9, 1.1))


def _claimable(now: dt.datetime) -> Q:
    return Q(state=DeliveryState.PENDING) | Q(state=DeliveryState.SENDING, claimed_until__lt=now)


def due_ids(*, limit: int = 100) -> list[int]:
    """Ids of deliveries whose time has come (or whose worker's lease ran out), oldest first."""
    now = timezone.now()
    return list(
        WebhookDelivery.objects.filter(_claimable(now), next_attempt_at__lte=now)
        .filter(endpoint__is_active=True)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def _waits_for_earlier(delivery: WebhookDelivery) -> bool:
    if not delivery.order_key:
        return False
    return (
        WebhookDelivery.objects.filter(
            endpoint_id=delivery.endpoint_id, order_key=delivery.order_key, id__lt=delivery.id
        )
        .exclude(state=DeliveryState.DELIVERED)
        .exists()
    )


def claim(delivery_id: int) -> WebhookDelivery | None:
    """Take a due delivery for sending; None when another worker has it, or it must wait."""
    now = timezone.now()
    with transaction.atomic():
        rows = WebhookDelivery.objects.filter(
            _claimable(now), pk=delivery_id, next_attempt_at__lte=now, endpoint__is_active=True
        )
        features = connection.features
        if features.has_select_for_update_skip_locked and features.has_select_for_update_of:
            rows = rows.select_for_update(skip_locked=True, of=("self",))
        delivery = rows.first()
        if delivery is None or _waits_for_earlier(delivery):
            return None
        taken = (
            WebhookDelivery.objects.filter(_claimable(now), pk=delivery_id)
            .filter(next_attempt_at__lte=now)
            .update(state=DeliveryState.SENDING, claimed_until=now + LEASE)
        )
    if not taken:
        return None
    return WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)


def body_of(delivery: WebhookDelivery) -> bytes:
    """The exact bytes POSTed (and signed) for a delivery."""
    return json.dumps(delivery.event.payload, separators=(",", ":"), ensure_ascii=False).encode()


def _post(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> tuple[int | None, str]:
    body = body_of(delivery)
    headers = signing.headers(
        secret=signing.unseal(endpoint.secret_encrypted),
        msg_id=delivery.message_id,
        timestamp=int(time.time()),
        body=body,
    )
    try:
        # Streamed and never read: a receiver's answer body is neither needed nor stored.
        with httpx.stream(
            "POST", endpoint.url, content=body, headers=headers, timeout=TIMEOUT
        ) as response:
            code = response.status_code
    except httpx.HTTPError as exc:
        reason = str(exc).replace(endpoint.url, "the endpoint") or type(exc).__name__
        return None, f"{type(exc).__name__}: {reason}"[:ERROR_LENGTH]
    if 200 <= code < 300:
        return code, ""
    return code, f"The endpoint answered HTTP {code}."


def attempt(delivery: WebhookDelivery, *, manual: bool = False) -> WebhookAttempt:
    """POST one claimed delivery and record the outcome (the claim is released either way)."""
    endpoint = delivery.endpoint
    started = timezone.now()
    clock = time.monotonic()
    code, error = _post(endpoint, delivery)
    duration_ms = int((time.monotonic() - clock) * 1000)
    ok = not error
    now = timezone.now()
    next_at = None if ok else now + backoff(delivery.attempts + 1)
    with transaction.atomic():
        fields: dict = {
            "attempts": F("attempts") + 1,
            "claimed_until": None,
            "last_status_code": code,
            "last_error": error,
        }
        if ok:
            fields.update(state=DeliveryState.DELIVERED, delivered_at=now)
        elif manual and delivery.delivered_at is not None:
            # A failed resend of a delivered event: it was received once already.
            fields.update(state=DeliveryState.DELIVERED)
        else:
            fields.update(state=DeliveryState.PENDING, next_attempt_at=next_at)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
        row = WebhookAttempt.objects.create(
            delivery=delivery,
            started_at=started,
            status_code=code,
            duration_ms=duration_ms,
            error=error,
            next_retry_at=next_at if not (manual and delivery.delivered_at) else None,
            manual=manual,
        )
        _note_endpoint(endpoint.pk, ok=ok, now=now)
    if not ok:
        log.info(
            "webhook delivery %s to endpoint %s failed (%s); next try at %s",
            delivery.message_id,
            endpoint.pk,
            code or "no answer",
            next_at,
        )
    return row


def _note_endpoint(endpoint_id: int, *, ok: bool, now: dt.datetime) -> None:
    """Track how long an endpoint has failed; disable it after failing for DISABLE_AFTER."""
    if ok:
        WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=False).update(
            failing_since=None
        )
        return
    WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(
        failing_since=now
    )
    since = (
        WebhookEndpoint.objects.filter(pk=endpoint_id)
        .values_list("failing_since", flat=True)
        .first()
    )
    if since is not None and now - since >= DISABLE_AFTER:
        disabled = WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=True).update(
            is_active=False,
            disabled_at=now,
            disabled_reason=(
                f"Disabled automatically: every delivery has failed since "
                f"{since:%Y-%m-%d %H:%M} UTC. Undelivered events are kept; enable the "
                f"endpoint to resume delivery."
            ),
        )
        if disabled:
            log.warning("webhook endpoint %s disabled after failing for 5 days", endpoint_id)


def deliver_due(*, limit: int = 100, budget: float = 30.0) -> int:
    """Send due deliveries for up to ``budget`` seconds; return how many were attempted."""
    deadline = time.monotonic() + budget
    done = 0
    for delivery_id in due_ids(limit=limit):
        delivery = claim(delivery_id)
        if delivery is None:
            continue
        attempt(delivery)
        done += 1
        if time.monotonic() > deadline:
            break
    return done


def resend(delivery: WebhookDelivery) -> WebhookAttempt | None:
    """Send a delivery again now (an administrator's Resend); None if a worker is sending it."""
    now = timezone.now()
    taken = (
        WebhookDelivery.objects.filter(pk=delivery.pk)
        .filter(
            Q(state__in=[DeliveryState.PENDING, DeliveryState.DELIVERED])
            | Q(state=DeliveryState.SENDING, claimed_until__lt=now)
        )
        .update(state=DeliveryState.SENDING, claimed_until=now + LEASE)
    )
    if not taken:
        return None
    fresh = WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery.pk)
    return attempt(fresh, manual=True)
