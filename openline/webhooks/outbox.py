"""The durable outbox: events become rows in the transaction of the change that caused them.

``emit`` runs inside that transaction (from a signal receiver): it writes one WebhookEvent
and one WebhookDelivery per active endpoint subscribed to the event, and asks for delivery
after commit. If the change rolls back, so do the rows, and nothing is ever sent.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from openline.webhooks.events import iso
from openline.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

log = logging.getLogger("openline.webhooks")

# Namespace of the message ids: uuid5(event uuid + endpoint id) is stable for each pair.
_MSG_NAMESPACE = uuid.UUID("6f0c6a57-5f9a-4a7e-9a59-8f7d0c1d7b3e")


def message_id(event_uuid: uuid.UUID, endpoint_id: int) -> str:
    """The Standard Webhooks ``webhook-id`` of one event for one endpoint."""
    return "msg_" + uuid.uuid5(_MSG_NAMESPACE, f"{event_uuid}:{endpoint_id}").hex


def subscribed(event_type: str) -> list[WebhookEndpoint]:
    """Return the active endpoints that want ``event_type``."""
    active = WebhookEndpoint.objects.filter(is_active=True).only("id", "events", "is_active")
    return [e for e in active if e.wants(event_type)]


def emit(event_type: str, data: dict, *, order_key: str = "") -> WebhookEvent | None:
    """Queue ``event_type`` for every subscribed endpoint; call inside the writing transaction."""
    endpoints = subscribed(event_type)
    if not endpoints:
        return None
    now = timezone.now()
    event = new_event(event_type, data, now)
    event.save(force_insert=True)
    WebhookDelivery.objects.bulk_create(
        [new_delivery(endpoint.pk, event, order_key, now) for endpoint in endpoints]
    )
    transaction.on_commit(_kick)
    return event


def new_event(event_type: str, data: dict, now) -> WebhookEvent:
    """The (unsaved) event row for ``data`` at ``now``: the body every endpoint is sent."""
    return WebhookEvent(
        type=event_type,
        payload={"type": event_type, "timestamp": iso(now), "data": data},
        created_at=now,
    )


def new_delivery(endpoint_id: int, event: WebhookEvent, order_key: str, now) -> WebhookDelivery:
    """The (unsaved) outbox row of ``event`` for one endpoint."""
    return WebhookDelivery(
        endpoint_id=endpoint_id,
        event=event,
        message_id=message_id(event.uuid, endpoint_id),
        order_key=order_key[:80],
        next_attempt_at=now,
        created_at=now,
    )


def _kick() -> None:
    from openline.webhooks.tasks import kick

    kick()
