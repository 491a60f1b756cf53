"""A new visitor's chat start stored on PostgreSQL in one statement: the consent capture's hot path.

``flows.livechat_start`` stays the definition of a start. For its common case — a new visitor
(no token) on a live chat channel, with or without the consent gate and an Idempotency-Key —
this module writes exactly the same rows in ONE data-modifying statement sent over
``openline.core.pgasync`` (``fetchone_batched``: the starts that arrive on a process's loop
while an earlier one is in flight share one transaction and one WAL flush — group commit — and
each is answered only after that commit; a statement the server refuses makes each run again
alone, so a failure never leaves anything half-written):

* the start key (``ON CONFLICT DO NOTHING``: a known key writes nothing, and the caller hands
  the request to the Django view, which replays it or refuses it 422);
* the visitor, the conversation (with its newest-message fields and one unread message, as
  ``receive_into`` leaves it), the consent record (``consent.services.consent_record``, the
  same object ``record_consent`` saves), the message;
* the webhook outbox rows the signal receivers would write (``webhooks.receivers``): one event
  per type that an active endpoint wants, one delivery per such endpoint, chosen in SQL.

What this process keeps in memory is verified inside the same statement, so nothing stale is
ever stored: the channel's columns that the rows copy (name, code, consent settings, the
agreement's name and default language), its enabled live chat connector, the agreement's
current version, and that no active endpoint wants these events beyond the ones whose
message ids were computed. When any of it changed, the statement writes nothing and the caller
hands the request to the Django view, which reads everything fresh and answers (409
``consent_changed`` for a newly published version, 404 for a disabled channel, ...).

The visitor, conversation and message ids come from small blocks reserved from their
sequences (one query per block; a block sized to the process's rate and used for at most
``ID_MAX_AGE`` seconds, so ids still follow creation order across processes to within about a
second), so every payload is built before the statement by the same functions the ORM path
uses. Consent records take their id in the
statement itself: the sealer's id ranges stay in commit order as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections import deque

from django.utils import timezone

from openline.consent.models import AgreementVersion
from openline.consent.services import ShownText, consent_record
from openline.conversations import events
from openline.conversations.actions.common import conversation_events, message_events
from openline.conversations.actions.lifecycle import new_conversation, new_visitor
from openline.conversations.models import (
    Conversation,
    Message,
    SenderKind,
    Visitor,
    VisitorOrigin,
)
from openline.core import pgasync
from openline.livechat import capture_sql, flows
from openline.livechat.models import StartKey
from openline.openchannels.models import ConnectorKind, OpenChannel
from openline.openchannels.services import consent_settings
from openline.webhooks import events as hook_events
from openline.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from openline.webhooks.outbox import message_id

log = logging.getLogger(__name__)

# Ids reserved per query from each of the visitor, conversation and message sequences.
ID_BLOCK = 200
# Requested languages whose shown text a channel keeps (more are read on each start).
SHOWN_KEPT = 50
# Reserved ids older than this are dropped unused, so ids follow creation order across
# processes to within about this many seconds (as transactions of different length do).
ID_MAX_AGE = 1.0
# A channel read by this process is used until a statement finds it changed, or this long.
CHANNEL_TTL = 60.0
# The webhook events a start can emit, in the order the ORM path emits them.
HOOK_TYPES = (
    hook_events.CONVERSATION_STARTED,
    hook_events.CONSENT_GIVEN,
    hook_events.MESSAGE_RECEIVED,
)


@dataclasses.dataclass
class ChannelState:
    """What this process knows of a live chat channel; verified by every statement."""

    channel: OpenChannel
    settings: dict  # consent_settings(channel), stored with each record
    version: AgreementVersion | None  # the current version when the gate is on
    shown: dict[str, ShownText]  # the text shown per requested language
    loaded_at: float

    @property
    def gate(self) -> bool:
        return self.version is not None


class Stale(Exception):
    """The statement found the channel, its version or the endpoints changed; nothing written."""


class KnownKey(Exception):
    """The Idempotency-Key is stored already: nothing written; the view replays or refuses it."""


_channels: dict[str, ChannelState] = {}
_endpoints: tuple[int, ...] = ()
_ids: deque[tuple[float, int, int, int]] = deque()  # (reserved at, visitor, conversation, message)
_ids_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


# ----- what the process keeps (read with the ORM, in a thread) ------------------------------


def load_channel(code: str) -> ChannelState | None:
    """Read a live chat channel as the view does (``views.start_channel``); None if there is none."""
    from openline.livechat.views import start_channel

    channel = start_channel(code)
    if channel is None:
        return None
    version = None
    if channel.consent_enabled and channel.agreement_id is not None:
        version_id = getattr(channel, "current_version_id", None)
        if version_id is None:
            return None  # the agreement has no version: the view answers consent_changed
        version = AgreementVersion.objects.select_related("agreement").get(pk=version_id)
    global _endpoints
    _endpoints = tuple(
        WebhookEndpoint.objects.filter(is_active=True).order_by("id").values_list("id", flat=True)
    )
    return ChannelState(
        channel=channel,
        settings=consent_settings(channel),
        version=version,
        shown={},
        loaded_at=time.monotonic(),
    )


def load_shown(state: ChannelState, language: str) -> ShownText | None:
    """The text of the channel's current version in ``language`` (``flows.current_offer``)."""
    shown = flows.current_offer(state.channel, language)
    if shown is not None and state.version is not None and shown.version.pk == state.version.pk:
        return shown
    return None


async def channel(code: str) -> ChannelState:
    """Return what this process knows of the channel, reading it on a miss.

    Raises Stale when the channel is not a live chat here (the view answers it).
    """
    state = _channels.get(code)
    if state is None or time.monotonic() - state.loaded_at > CHANNEL_TTL:
        state = await asyncio.to_thread(in_thread, load_channel, code)
        if state is None:
            _channels.pop(code, None)
            raise Stale(code)
        if len(_channels) > 1000:
            _channels.clear()
        _channels[code] = state
    return state


async def shown_text(state: ChannelState, language: str | None) -> ShownText | None:
    """The text the gate shows for ``language`` (None without a gate), reading on a miss.

    Kept per requested language and per the language it resolved to (an unknown language
    resolves to the default one), at most ``SHOWN_KEPT`` per channel. Raises Stale when the
    current version is no longer the one this process knows.
    """
    if not state.gate:
        return None
    key = language or ""
    shown = state.shown.get(key)
    if shown is None:
        shown = await asyncio.to_thread(in_thread, load_shown, state, key)
        if shown is None:
            raise Stale(state.channel.code)
        if len(state.shown) < SHOWN_KEPT:
            state.shown[key] = shown
    return shown


def in_thread(function, *args):
    """Run ``function`` in this worker thread with fresh Django connections (as a request does)."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return function(*args)
    finally:
        close_old_connections()


def forget(code: str) -> None:
    """Drop what this process keeps of a channel (the statement found it changed)."""
    _channels.pop(code, None)


_block = 8  # the next block's size: twice what the last block used, within [8, ID_BLOCK]


def _take_id() -> tuple[int, int, int] | None:
    global _block
    oldest = time.monotonic() - ID_MAX_AGE
    dropped = 0
    while _ids:
        reserved_at, *ids = _ids.popleft()
        if reserved_at >= oldest:
            if not _ids:
                _block = min(ID_BLOCK, _block * 2)  # used up in time: busier than thought
            return ids[0], ids[1], ids[2]
        dropped += 1
    if dropped:
        _block = max(8, min(ID_BLOCK, 2 * (_block - dropped)))
    return None


async def _next_ids() -> tuple[int, int, int]:
    """Reserve (visitor, conversation, message) ids: one query per block of starts.

    A block is used for ``ID_MAX_AGE`` seconds at most, so a quiet process never hands out an
    id that the sequence passed long ago; its size follows the process's rate of starts (up to
    ``ID_BLOCK``), so few reserved ids go unused.
    """
    ids = _take_id()
    if ids is not None:
        return ids
    async with pgasync.per_loop(_ids_locks, asyncio.Lock):
        ids = _take_id()
        if ids is not None:
            return ids
        async with pgasync.connection() as conn:
            cursor = await conn.execute(_reserve_sql(), (_block,))
            rows = await cursor.fetchall()
        now = time.monotonic()
        _ids.extend((now, *row) for row in rows)
        ids = _take_id()
        assert ids is not None
        return ids


def _reserve_sql() -> str:
    names = [m._meta.db_table for m in (Visitor, Conversation, Message)]
    calls = ", ".join(f"nextval(pg_get_serial_sequence('{name}', 'id'))" for name in names)
    return f"SELECT {calls} FROM generate_series(1, %s)"


# ----- one start -----------------------------------------------------------------------------


def _stamp(obj) -> None:
    """Fill the auto_now(_add) timestamps as ``Model.save`` does for a new row."""
    for field in obj._meta.concrete_fields:
        if getattr(field, "auto_now_add", False) or getattr(field, "auto_now", False):
            field.pre_save(obj, True)


@dataclasses.dataclass(frozen=True)
class Start:
    """A checked start of a new visitor (``check_text`` passed, ``page_url`` cleaned)."""

    code: str
    accepted: flows.AcceptedConsent | None
    page_url: str
    ip: str
    user_agent: str
    language: str
    text: str
    client_id: str
    idempotency: flows.IdempotencyKey | None


def _hooks(params: dict, emitted: list[tuple[str, dict, str]], now) -> None:
    """Bind the outbox rows: an event per type, a delivery per known endpoint (SQL filters)."""
    stamp = hook_events.iso(now)
    rows, deliveries = [], []
    for n, (event_type, data, order_key) in enumerate(emitted):
        event_uuid = uuid.uuid4()
        payload = {"type": event_type, "timestamp": stamp, "data": data}
        rows.append({"uuid": str(event_uuid), "type": event_type, "payload": payload, "n": n})
        for endpoint in _endpoints:
            deliveries.append(
                {
                    "uuid": str(event_uuid),
                    "endpoint": endpoint,
                    "message_id": message_id(event_uuid, endpoint),
                    "order_key": order_key[:80],
                }
            )
    # Array literals of code constants and ids: nothing to quote.
    params["hook_types"] = "{" + ",".join(event_type for event_type, _, _ in emitted) + "}"
    params["hook_events"] = capture_sql.json_text(rows)
    params["hook_deliveries"] = capture_sql.json_text(deliveries)


def offered(
    state: ChannelState, shown: ShownText | None, accepted: flows.AcceptedConsent | None
) -> bool:
    """True when the start may go on: no gate, or the client accepted the text shown now."""
    if not state.gate:
        return True
    return (
        shown is not None
        and accepted is not None
        and accepted.version_id == shown.version.id
        and accepted.sha256 == shown.sha256
    )


async def capture(
    start: Start, state: ChannelState, shown: ShownText | None
) -> tuple[flows.Started, list[list[tuple[str, dict]]], int]:
    """Store ``start`` in one statement: what ``livechat_start`` returns, its events, deliveries.

    The events are the groups of each ``events.send_now`` call the ORM path makes after commit.

    Raises Stale (the channel, version or endpoints changed: nothing written) or KnownKey (the
    Idempotency-Key is stored already); psycopg errors propagate (nothing was written).
    """
    channel = state.channel
    if not offered(state, shown, start.accepted):
        raise Stale(start.code)  # the view answers consent_required / consent_changed
    visitor_id, conversation_id, message_pk = await _next_ids()
    conn = capture_sql.ops()
    now = timezone.now()
    # The rows create_visitor and start_conversation write, with the reserved ids.
    visitor = new_visitor(
        channel=channel,
        origin=VisitorOrigin.LIVECHAT,
        language=start.language,
        user_agent=start.user_agent,
    )
    visitor.id, visitor.last_seen_at = visitor_id, now
    _stamp(visitor)
    conversation = new_conversation(channel=channel, visitor=visitor, page_url=start.page_url)
    conversation.id = conversation_id
    _stamp(conversation)
    conversation.assignee = None
    published: list[list[tuple[str, dict]]] = []
    emitted = [
        (
            hook_events.CONVERSATION_STARTED,
            hook_events.conversation_data(conversation),
            f"conversation:{conversation.pk}",
        )
    ]
    published.append(_conversation_started(conversation))
    record = None
    if state.gate:
        assert shown is not None and start.accepted is not None
        record = consent_record(
            **flows.gate_record_fields(
                channel=channel,
                shown=shown,
                accepted=start.accepted,
                page_url=start.page_url,
                ip=start.ip,
                user_agent=start.user_agent,
            ),
            visitor=visitor,
            conversation=conversation,
        )
        emitted.append(hook_events.consent_data(record))
    message = Message(
        id=message_pk,
        conversation=conversation,
        sender=SenderKind.VISITOR,
        author=None,
        text=start.text,
        client_id=start.client_id,
    )
    _stamp(message)
    conversation.last_message_at = message.created_at
    conversation.last_message_sender = SenderKind.VISITOR
    conversation.last_message_preview = start.text[:200]
    conversation.unread_count = 1
    event_type, data = hook_events.message_data(message, conversation)
    emitted.append((event_type, data, f"conversation:{conversation.pk}"))
    published.append(_message_stored(conversation, message))

    statement = capture_sql.statement(state.gate, start.idempotency is not None)
    params: dict = {
        "channel_id": channel.pk,
        "connector_kind": ConnectorKind.LIVECHAT,
        "known_endpoints": "{" + ",".join(str(e) for e in _endpoints) + "}",
    }
    if state.gate:
        assert state.version is not None and channel.agreement is not None
        params.update(
            version_id=state.version.pk,
            agreement_name=channel.agreement.name,
            default_language=channel.agreement.default_language,
        )
    objects: dict[str, object] = {
        "visitor": visitor,
        "conversation": conversation,
        "record": record,
        "message": message,
        "hook_event": WebhookEvent(created_at=now),
        "hook_delivery": WebhookDelivery(next_attempt_at=now, created_at=now),
    }
    if start.idempotency is not None:
        objects["key"] = StartKey(
            channel=channel,
            key=start.idempotency.key,
            body_sha256=start.idempotency.body_sha256,
            visitor_public_id=visitor.public_id,
            conversation_pk=conversation.pk,
            message_pk=message.pk,
            record_uuid=record.uuid if record is not None else None,
            created_at=timezone.now(),
        )
    for field in statement.compared:
        params[f"channel_{field.attname}"] = field.get_db_prep_save(
            getattr(channel, field.attname), conn
        )
    for prefix, bound in statement.bound:
        params[prefix] = capture_sql.row_json(objects[prefix], bound, conn)
    _hooks(params, emitted, now)
    delivered = await _run(statement, params, start.code)
    for obj in (visitor, conversation, message, record):
        if obj is not None:
            obj._state.adding = False
            obj._state.db = "default"
    started = flows.Started(
        visitor=visitor, conversation=conversation, message=message, record=record
    )
    return started, published, delivered


async def _run(statement: capture_sql.Statement, params: dict, code: str) -> int:
    global _endpoints
    row = await pgasync.fetchone_batched(statement.sql, statement.values(params))
    assert row is not None
    guarded, went, delivered, endpoints = row
    _endpoints = tuple(endpoints)
    if not guarded:
        forget(code)
        raise Stale(code)
    if not went:
        raise KnownKey(code)
    return delivered


# ----- events (built by conversations.actions.common, as the ORM path publishes them) -------


def _conversation_started(conversation) -> list[tuple[str, dict]]:
    # A new visitor has no CRM name yet: known=None is what naming.client_names finds.
    operators, visitor = conversation_events(conversation, kind="conversation.started", known=None)
    return events.event_groups(conversation, operators, visitor)


def _message_stored(conversation, message) -> list[tuple[str, dict]]:
    operators, visitor = message_events(conversation, message, known=None)
    return events.event_groups(conversation, operators, visitor)
