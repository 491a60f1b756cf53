"""The durable intake of messenger events: store each once, then process them in order.

Webhooks and the Telegram poller call ``store_events`` (one INSERT ... ON CONFLICT DO NOTHING
per request, keyed by the platform's event id), so a retried, duplicated or concurrent
delivery is stored once. ``process_pending`` turns stored events into conversation actions,
one connector at a time under a row lock on the Connector, each event marked done in the
same transaction as its effects: a crash redoes the event, never doubles it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from openline.connectors.base import (
    ClientEvent,
    ClientIdentity,
    InboundEvent,
    InboundMessage,
    StatusEvent,
    event_from_json,
    event_to_json,
)
from openline.connectors.models import InboundEvent as StoredEvent
from openline.connectors.models import InboundEventState
from openline.openchannels.models import ConnectionState, Connector

log = logging.getLogger(__name__)

# After this many failed attempts an event is "failed" and shown on the connector page.
MAX_ATTEMPTS = 8
# Events handled per transaction (the Connector's row lock is held for one chunk).
CHUNK = 25
KEY_LENGTH = 160  # InboundEvent.event_key max_length


def backoff(attempts: int) -> dt.timedelta:
    """How long a failed event waits before its next attempt (2 s doubling, at most 10 min)."""
    return dt.timedelta(seconds=min(600, 2 ** max(1, attempts)))


# ----- storing ------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """Make platform strings storable everywhere: no NUL, no lone surrogates.

    PostgreSQL refuses both in text and jsonb; a fuzzed or hostile body must not turn into
    a 500 (and a platform retrying it forever).
    """
    if isinstance(value, str):
        if value.isascii():
            return value.replace("\x00", "")
        fixed = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return fixed.replace("\x00", "")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _key(event: InboundEvent) -> str:
    key = _clean(str(event.key))
    if not key:
        raise ValueError("an event without a key")
    if len(key) > KEY_LENGTH:
        # Still unique and stable for the same delivery.
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def store_events(*, connector: Connector, events: list[InboundEvent]) -> int:
    """Store the events of one request in ONE statement, each key once; return how many."""
    rows: dict[str, StoredEvent] = {}
    for event in events:
        if isinstance(event, ClientEvent) and event.event == "ignored":
            continue  # acknowledged with 200, nothing to keep
        key = _key(event)
        if key not in rows:
            rows[key] = StoredEvent(
                connector=connector, event_key=key, event=_clean(event_to_json(event))
            )
    if rows:
        # The unique (connector, event_key) constraint decides, whichever process is first.
        _insert_ignoring_duplicates(list(rows.values()))
    return len(rows)


def _insert_ignoring_duplicates(rows: list[StoredEvent]) -> None:
    """INSERT every row in one statement, skipping keys already stored.

    One statement is atomic by itself: unlike bulk_create() this needs no BEGIN/COMMIT round
    trips around it, which is most of the webhook's database time.
    """
    from django.db import connection

    if connection.in_atomic_block:
        StoredEvent.objects.bulk_create(rows, ignore_conflicts=True)
        return
    by_name = {f.name: f for f in StoredEvent._meta.concrete_fields}
    fields = [by_name[name] for name in _INSERT_FIELDS]
    now = timezone.now()
    params: list = []
    for row in rows:
        row.received_at = now
        params.extend(f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields)
    table = connection.ops.quote_name(StoredEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    values = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES {values} ON CONFLICT DO NOTHING", params
        )


_INSERT_FIELDS = (
    "connector",
    "event_key",
    "event",
    "state",
    "attempts",
    "last_error",
    "received_at",
    "processed_at",
)


# ----- processing ---------------------------------------------------------------------------


@dataclass
class Processed:
    done: int = 0
    failed: int = 0
    retry_at: dt.datetime | None = None  # the earliest pending retry, if any

    def later(self, when: dt.datetime) -> None:
        if self.retry_at is None or when < self.retry_at:
            self.retry_at = when


def process_pending(
    *,
    connector_id: int | None = None,
    limit: int = 200,
    received_before: dt.datetime | None = None,
) -> Processed:
    """Process stored pending events in order, per connector; return what happened.

    ``received_before`` limits the run to connectors with an event waiting since then
    (the periodic sweep leaves fresh events to the task their webhook enqueued).
    """
    pending = StoredEvent.objects.filter(state=InboundEventState.PENDING)
    if connector_id is not None:
        pending = pending.filter(connector_id=connector_id)
    if received_before is not None:
        pending = pending.filter(received_at__lt=received_before)
    connector_ids = list(
        pending.order_by().values_list("connector_id", flat=True).distinct()[:1000]
    )
    outcome = Processed()
    for cid in connector_ids:
        _process_connector(cid, limit=limit, outcome=outcome)
    return outcome


def _client_of(data: dict) -> str:
    client = data.get("client") or {}
    return str(client.get("external_id") or "")


def _due(row: StoredEvent, now: dt.datetime) -> dt.datetime | None:
    """When a failed pending event may be tried again (None: now)."""
    # For a pending event that failed, processed_at is the time of its last attempt.
    if row.attempts and row.processed_at:
        due = row.processed_at + backoff(row.attempts)
        if due > now:
            return due
    return None


def _process_connector(cid: int, *, limit: int, outcome: Processed) -> None:
    blocked: set[str] = set()  # clients whose earlier event must be handled first
    after_id = 0
    handled = 0
    while handled < limit:
        rows = list(
            StoredEvent.objects.filter(
                connector_id=cid, state=InboundEventState.PENDING, id__gt=after_id
            ).order_by("id")[:CHUNK]
        )
        if not rows:
            return
        after_id = rows[-1].id
        connector = Connector.objects.select_related("channel").filter(pk=cid).first()
        if connector is None:
            return  # deleted meanwhile: its events went with it
        names = _profiles(connector, [r for r in rows if _client_of(r.event) not in blocked])
        with transaction.atomic():
            # One worker per connector at a time: a client's messages are never interleaved.
            connector = (
                Connector.objects.select_for_update(of=("self",))
                .select_related("channel")
                .get(pk=cid)
            )
            now = timezone.now()
            for candidate in rows:
                # Another worker may have handled it between our read and our lock.
                row = StoredEvent.objects.filter(
                    pk=candidate.pk, state=InboundEventState.PENDING
                ).first()
                if row is None:
                    continue
                client = _client_of(row.event)
                if client and client in blocked:
                    continue
                if due := _due(row, now):
                    outcome.later(due)
                    if client:
                        blocked.add(client)
                    continue
                handled += 1
                if _process_one(connector, row, names, outcome, now) is False and client:
                    blocked.add(client)


def _process_one(connector, row: StoredEvent, names: dict, outcome: Processed, now) -> bool:
    try:
        with transaction.atomic():
            state = _apply(connector, event_from_json(row.event), names)
            # The effects live in the conversation now: keep only the key (for dedupe) and
            # the state, never a second copy of the client's name, number and words.
            StoredEvent.objects.filter(pk=row.pk).update(state=state, processed_at=now, event={})
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
        log.warning(
            "inbound event %s of connector %s failed: %s",
            row.pk,
            connector.pk,
            type(exc).__name__,
            exc_info=True,
        )
        _record_failure(connector, row, exc, now, outcome)
        return False
    outcome.done += 1
    return True


def _record_failure(connector, row: StoredEvent, exc: Exception, now, outcome: Processed) -> None:
    attempts = row.attempts + 1
    error = f"{type(exc).__name__}: {exc}"[:300]
    failed = attempts >= MAX_ATTEMPTS
    StoredEvent.objects.filter(pk=row.pk).update(
        attempts=attempts,
        last_error=error,
        processed_at=now,
        state=InboundEventState.FAILED if failed else InboundEventState.PENDING,
    )
    if failed:
        outcome.failed += 1
        Connector.objects.filter(pk=connector.pk).update(
            last_error=f"An incoming event could not be processed: {error}"[:300],
            last_error_at=now,
        )
    else:
        outcome.later(now + backoff(attempts))


def _client_ref(identity: ClientIdentity, names: dict):
    from openline.conversations.inbound import ClientRef

    known = names.get(identity.external_id)
    return ClientRef(
        external_id=identity.external_id,
        name=identity.name or (known.name if known else ""),
        language=identity.language or (known.language if known else ""),
        phone=identity.phone,
        username=identity.username,
    )


def _apply(connector, event: InboundEvent, names: dict) -> str:
    """Hand one typed event to the conversation core; return the event's final state."""
    from openline.conversations import inbound

    channel, kind = connector.channel, connector.kind
    if not connector.is_enabled or connector.state == ConnectionState.NOT_CONNECTED:
        # Disconnected meanwhile (another process's cache still took the request).
        return InboundEventState.IGNORED
    if isinstance(event, InboundMessage):
        from openline.crm import messenger

        visitor = inbound.get_or_create_client(
            channel=channel, kind=kind, client=_client_ref(event.client, names)
        )
        item = messenger.ensure_client_item(channel=channel, visitor=visitor)
        result = inbound.receive_inbound(
            channel=channel,
            kind=kind,
            visitor=visitor,
            key=event.key,
            text=event.text,
            button=event.button,
            source=messenger.item_source(item),
            sent_at=event.sent_at,
            content=getattr(event, "content", True),
        )
        if event.button:
            transaction.on_commit(lambda: _acknowledge(connector, event))
        if result.declined:
            _delete_declined(connector, result.visitor)
        return InboundEventState.DONE
    if isinstance(event, StatusEvent):
        inbound.record_delivery(
            channel=channel,
            kind=kind,
            platform_message_id=event.platform_message_id,
            state=event.state,
            error=event.error,
            watermark=event.watermark,
            client_external_id=event.client_external_id,
        )
        return InboundEventState.DONE
    if isinstance(event, ClientEvent):
        if event.event == "ignored":
            return InboundEventState.IGNORED
        inbound.record_client_event(
            channel=channel, kind=kind, client=_client_ref(event.client, names), event=event.event
        )
        return InboundEventState.DONE
    return InboundEventState.IGNORED


def _delete_declined(connector, visitor) -> None:
    """Delete the data of a client who pressed "I decline"; client input never fails an event."""
    from django.core.exceptions import ValidationError

    from openline.crm import awaiting

    try:
        with transaction.atomic():
            awaiting.delete_client_data(
                actor=None,
                visitor=visitor,
                reason=f"The client declined consent in {connector.get_kind_display()}.",
            )
    except ValidationError:
        # They consent to the current version after all (or are gone): nothing to delete.
        log.info("a decline of connector %s needed no deletion", connector.pk)


def _acknowledge(connector, event: InboundMessage) -> None:
    """Tell the platform a button press was handled (Telegram stops the spinner); best effort."""
    from openline.connectors.registry import connector_secrets, platform_for

    platform = platform_for(connector.kind)
    acknowledge = getattr(platform, "acknowledge", None)
    if acknowledge is None:
        return
    try:
        acknowledge(event, secrets=connector_secrets(connector), config=connector.config)
    except Exception:  # noqa: BLE001 - the press itself is already handled
        log.info("could not acknowledge a %s button press", connector.kind)


def forget_client_events(*, channel_id: int, kind: str, external_id: str) -> int:
    """Blank every stored event of one client (their data was deleted); return how many waited."""
    from django.db.models import Q

    if not external_id:
        return 0
    rows = StoredEvent.objects.filter(
        Q(event__client__external_id=external_id) | Q(event__client_external_id=external_id),
        connector__channel_id=channel_id,
        connector__kind=kind,
    )
    # Rows processed before events were blanked on processing keep their state, not their data.
    rows.exclude(state__in=[InboundEventState.PENDING, InboundEventState.FAILED]).update(event={})
    return rows.filter(state__in=[InboundEventState.PENDING, InboundEventState.FAILED]).update(
        event={}, state=InboundEventState.IGNORED
    )


def _profiles(connector, rows: list[StoredEvent]) -> dict[str, ClientIdentity]:
    """Ask the platform for names the events lack, outside any transaction (best effort)."""
    from openline.conversations.models import Visitor

    wanted: dict[str, ClientIdentity] = {}
    for row in rows:
        data = row.event
        if data.get("kind") != "message" or not data.get("client"):
            continue
        client = ClientIdentity(**data["client"])
        if client.external_id and not client.name:
            wanted.setdefault(client.external_id, client)
    if not wanted:
        return {}
    named = set(
        Visitor.objects.filter(
            channel_id=connector.channel_id,
            origin=connector.kind,
            external_id__in=list(wanted),
        )
        .exclude(name="")
        .values_list("external_id", flat=True)
    )
    found: dict[str, ClientIdentity] = {}
    if not set(wanted) - named:
        return found
    from openline.connectors.registry import connector_secrets, platform_for

    try:
        platform = platform_for(connector.kind)
        secrets = connector_secrets(connector)
    except Exception:  # noqa: BLE001 - names are a nicety; the message is not
        log.warning("no profile lookups for connector %s", connector.pk, exc_info=True)
        return found
    for external_id, client in wanted.items():
        if external_id in named:
            continue
        try:
            found[external_id] = platform.profile(client, secrets=secrets, config=connector.config)
        except Exception:  # noqa: BLE001 - best effort, e.g. no permission for the profile API
            log.info("no profile for a %s client", connector.kind)
    return found
