"""Telegram long polling with exactly one poller per bot across all processes and hosts.

Every ``messengers_run`` process may try to poll every Telegram connector in polling mode;
a lease on ``Connector.poller_owner`` / ``poller_lease_until``, taken and renewed by a
conditional UPDATE (the owner is me, or the lease expired), lets exactly one of them call
``getUpdates``. The offset advances only after the updates it confirms are committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from openline.connectors.ingest import store_events
from openline.connectors.registry import connector_secrets
from openline.openchannels.models import ConnectionState, Connector, ConnectorMode

log = logging.getLogger(__name__)


def new_owner() -> str:
    """A poller identity unique across hosts and processes (and restarts)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def polling_connectors():
    """Telegram connectors that receive by long polling."""
    return Connector.objects.filter(
        kind="telegram",
        mode=ConnectorMode.POLLING,
        is_enabled=True,
        channel__is_active=True,
    ).exclude(state=ConnectionState.NOT_CONNECTED)


def acquire(*, connector_id: int, owner: str, lease_seconds: float) -> bool:
    """Take or renew the poller lease of a connector; True when ``owner`` holds it now."""
    now = timezone.now()
    return bool(
        polling_connectors()
        .filter(pk=connector_id)
        .filter(
            Q(poller_owner=owner)
            | Q(poller_owner="")
            | Q(poller_lease_until__isnull=True)
            | Q(poller_lease_until__lt=now)
        )
        .update(poller_owner=owner, poller_lease_until=now + dt.timedelta(seconds=lease_seconds))
    )


def release(*, connector_id: int, owner: str) -> None:
    """Give the lease up (on exit), so another process takes over at once."""
    Connector.objects.filter(pk=connector_id, poller_owner=owner).update(
        poller_owner="", poller_lease_until=None
    )


class LeaseLost(Exception):
    """Another process holds the lease now: this poller must not advance the offset."""


def poll_once(*, connector_id: int, owner: str, timeout: float) -> int:
    """Fetch one batch of updates, store them, advance the offset; return how many were new.

    The caller holds the lease for longer than ``timeout`` (the long-poll wait).
    """
    from openline.connectors.tasks import kick
    from openline.connectors.telegram.inbound import poll

    connector = Connector.objects.get(pk=connector_id)
    events, next_offset = poll(
        secrets=connector_secrets(connector),
        offset=connector.poll_offset,
        timeout=int(timeout),
        config=connector.config,
    )
    with transaction.atomic():
        stored = store_events(connector=connector, events=events)
        if next_offset != connector.poll_offset:
            moved = Connector.objects.filter(pk=connector_id, poller_owner=owner).update(
                poll_offset=next_offset, last_event_at=timezone.now()
            )
            if not moved:
                # Keeping the stored events is harmless (they are unique); the new owner
                # fetches from the old offset and finds them already stored.
                raise LeaseLost(connector_id)
        if stored:
            transaction.on_commit(lambda: kick(connector_id))
    return stored


def record_error(*, connector_id: int, error: str) -> None:
    """Show a polling failure on the connector page (written only when the text changes)."""
    from openline.core.logging import redact

    text = redact(str(error))[:300]
    Connector.objects.filter(pk=connector_id).exclude(last_error=text).update(
        last_error=text, last_error_at=timezone.now()
    )
