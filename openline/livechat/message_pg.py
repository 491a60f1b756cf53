"""A client's message on PostgreSQL from the event loop: one autocommit statement, no thread hop.

The hot path of every chat. ``flows.visitor_send`` (the ORM path, with ``store_pg`` inside its
transaction) stays the definition; this module does exactly its writes in ONE data-modifying
statement sent through ``openline.core.pgasync`` (the statement is the transaction):

* the conversation checked (the visitor's own, on this channel, not closed, no message under
  this ``client_id`` yet) and noted (newest message, one more unread; the UPDATE's row lock
  orders concurrent writers, as ``SELECT … FOR UPDATE`` does on the ORM path);
* the message inserted;
* the webhook outbox rows the ``message_stored`` receiver would write (``webhooks.outbox.emit``):
  one event and one delivery per active endpoint subscribed to ``message.received``, with the
  same payload, order key and message ids (uuid5 of the event and the endpoint, computed here
  for the endpoints this process knows: an endpoint it does not know yet makes the statement
  store nothing, and the ORM path writes the rows);
* the conversation, its assignee and the client's CRM name returned for the events.

When the statement stores nothing (not found, closed, a resent frame, an unknown endpoint, a
concurrent copy refused by the unique constraint) ``send`` returns None and the caller takes the
ORM path, which tells why. A database that cannot be reached raises Django's
``OperationalError`` (an ``unavailable`` error frame, nothing acknowledged, nothing stored).
"""

from __future__ import annotations

from types import SimpleNamespace

import psycopg
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection
from django.utils import timezone
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout

from openline.conversations import events, naming, signals
from openline.conversations.actions.common import message_events
from openline.conversations.models import (
    Conversation,
    ConversationStatus,
    Message,
    SenderKind,
    Visitor,
    VisitorOrigin,
)
from openline.core import pgasync, unavailable
from openline.crm import naming as crm_naming
from openline.crm.models import CrmItem, CrmVisitor
from openline.openchannels.models import Connector, ConnectorKind, OpenChannel
from openline.webhooks import events as webhook_events
from openline.webhooks import outbox
from openline.webhooks import tasks as webhook_tasks
from openline.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

EVENT_TYPE = webhook_events.MESSAGE_RECEIVED
# The outbox receiver of ``message_stored`` (webhooks.receivers.connect): the one this
# statement stands in for. Any other receiver sends the message down the ORM path.
OUTBOX_RECEIVER = "openline.webhooks.message"

# Active webhook endpoints this process knows (ids), read again after every ORM fallback.
_known_endpoints: tuple[int, ...] = ()


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _columns(model, alias: str) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def _inserted(model) -> list:
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def _names(model) -> str:
    return ", ".join(f'"{f.column}"' for f in _inserted(model))


# The delivery columns the statement fills from its own rows.
_DELIVERY_SPECIALS = {
    "endpoint_id": "hook.id",
    "event_id": "ev.id",
    "message_id": "%(message_ids)s::jsonb ->> hook.id::text",
}


def _statement() -> str:
    user = get_user_model()
    conversations, messages = _table(Conversation), _table(Message)
    endpoints, visitors = _table(WebhookEndpoint), _table(Visitor)
    channels, connectors = _table(OpenChannel), _table(Connector)
    message_values = ", ".join(["conv.id"] + [f"%(m_{f.attname})s" for f in _inserted(Message)[1:]])
    assert _inserted(Message)[0].attname == "conversation_id", "the conversation comes first"
    event_values = ", ".join(
        "jsonb_set(%(e_payload)s::jsonb, '{data,message_id}', to_jsonb(msg.id))"
        if f.attname == "payload"
        else f"%(e_{f.attname})s"
        for f in _inserted(WebhookEvent)
    )
    delivery_values = ", ".join(
        _DELIVERY_SPECIALS.get(f.attname, f"%(d_{f.attname})s") for f in _inserted(WebhookDelivery)
    )
    # An endpoint wants the event as ``WebhookEndpoint.wants`` says (active, its list has it).
    wanted = "e.is_active AND jsonb_typeof(e.events) = 'array' AND e.events @> %(wanted)s::jsonb"
    return f"""
        WITH conv AS (
            UPDATE {conversations} AS c
            SET last_message_at = %(m_created_at)s, last_message_sender = %(m_sender)s,
                last_message_preview = %(preview)s, unread_count = c.unread_count + 1
            WHERE c.id = %(conversation)s AND c.visitor_id = %(visitor)s
              AND c.channel_id = %(channel)s AND c.origin = %(origin)s AND c.status <> %(closed)s
              AND EXISTS (
                SELECT 1 FROM {visitors} AS v WHERE v.id = c.visitor_id AND v.erased_at IS NULL
              )
              AND EXISTS (
                SELECT 1 FROM {channels} AS ch
                JOIN {connectors} AS k ON k.channel_id = ch.id
                WHERE ch.id = c.channel_id AND ch.is_active
                  AND k.kind = %(livechat)s AND k.is_enabled
              )
              AND NOT EXISTS (
                SELECT 1 FROM {messages} AS m
                WHERE m.conversation_id = c.id AND m.client_id = %(m_client_id)s
                  AND m.client_id <> ''
              )
              AND NOT EXISTS (
                SELECT 1 FROM {endpoints} AS e
                WHERE e.is_active AND (
                  jsonb_typeof(e.events) NOT IN ('array', 'null')
                  OR ({wanted} AND NOT (%(message_ids)s::jsonb ? e.id::text))
                )
              )
            RETURNING c.*
        ), msg AS (
            INSERT INTO {messages} ({_names(Message)}) SELECT {message_values} FROM conv
            RETURNING id
        ), hook AS (
            SELECT e.id FROM {endpoints} AS e WHERE {wanted}
        ), ev AS (
            INSERT INTO {_table(WebhookEvent)} ({_names(WebhookEvent)})
            SELECT {event_values} FROM msg WHERE EXISTS (SELECT 1 FROM hook)
            RETURNING id
        ), dl AS (
            INSERT INTO {_table(WebhookDelivery)} ({_names(WebhookDelivery)})
            SELECT {delivery_values} FROM ev CROSS JOIN hook ORDER BY hook.id
            RETURNING id
        )
        SELECT msg.id, {_columns(Conversation, "conv")}, {_columns(user, "u")},
               {_name_sql()} AS known_name, (SELECT count(*) FROM dl) AS deliveries
        FROM conv CROSS JOIN msg LEFT JOIN {_table(user)} AS u ON u.id = conv.assignee_id
    """


def _name_sql() -> str:
    """The client's CRM name as ``crm.naming.resolve`` finds it (NULL when not linked)."""
    return f"""(
        SELECT i.name FROM {_table(CrmVisitor)} AS cv
        JOIN {_table(CrmItem)} AS i ON i.id = cv.item_id
        JOIN {_table(Visitor)} AS v ON v.id = cv.visitor_id
        WHERE cv.visitor_id = conv.visitor_id AND v.erased_at IS NULL
    )"""


_STATEMENT: str | None = None


def usable() -> bool:
    """Whether a client's message may take this path in this process right now."""
    if not pgasync.available() or unavailable.breaker.is_open:
        return False
    # The statement writes what the outbox receiver writes and names clients as the CRM does:
    # with any other receiver or name source, the ORM path runs them.
    if {key[0] for key, *_ in signals.message_stored.receivers} != {OUTBOX_RECEIVER}:
        return False
    return all(resolver is crm_naming.resolve for resolver in naming._resolvers)


# What changes from one message to the next; every other value is the models' own default,
# prepared once per process (``_template``).
_PER_MESSAGE = {
    Message: {"conversation_id", "text", "client_id", "created_at"},
    WebhookEvent: {"uuid", "payload", "created_at"},
    WebhookDelivery: {"order_key", "next_attempt_at", "created_at", *_DELIVERY_SPECIALS},
}
_TEMPLATE: dict | None = None


def _template() -> dict:
    """The parameters every message shares, from unsaved rows as the ORM path builds them."""
    global _TEMPLATE
    if _TEMPLATE is None:
        now = timezone.now()
        message = Message(conversation_id=0, sender=SenderKind.VISITOR, author=None, text="")
        event = outbox.new_event(EVENT_TYPE, {}, now)
        rows = {
            "m": message,
            "e": event,
            "d": outbox.new_delivery(0, event, "", now),
        }
        template: dict = {}
        for prefix, row in rows.items():
            model = type(row)
            for f in _inserted(model):
                if f.attname not in _PER_MESSAGE[model]:
                    value = f.get_db_prep_save(getattr(row, f.attname), connection)
                    template[f"{prefix}_{f.attname}"] = value
        template.update(
            origin=VisitorOrigin.LIVECHAT,
            closed=ConversationStatus.CLOSED,
            wanted=Jsonb([EVENT_TYPE]),
            livechat=str(ConnectorKind.LIVECHAT.value),
        )
        _TEMPLATE = template
    return _TEMPLATE


def _params(
    *, channel, visitor, conversation_id: int, text: str, client_id: str
) -> tuple[dict, Message]:
    # The message as Model.save would write it (created_at is auto_now_add).
    now = timezone.now()
    message = Message(
        conversation_id=conversation_id,
        sender=SenderKind.VISITOR,
        author=None,
        text=text,
        client_id=client_id,
        created_at=now,
    )
    # The event as the outbox receiver builds it; the statement sets the message's id.
    message.pk = 0
    event_type, data = webhook_events.message_data(
        message,
        SimpleNamespace(pk=conversation_id, channel_id=channel.pk, origin=VisitorOrigin.LIVECHAT),
    )
    message.pk = None
    event = outbox.new_event(event_type, data, now)
    payload = WebhookEvent._meta.get_field("payload")
    params = dict(_template())
    params.update(
        m_text=text,
        m_client_id=client_id,
        m_created_at=now,
        e_uuid=event.uuid,
        e_payload=payload.get_db_prep_save(event.payload, connection),
        e_created_at=now,
        d_order_key=f"conversation:{conversation_id}"[:80],
        d_next_attempt_at=now,
        d_created_at=now,
        message_ids=Jsonb({str(pk): outbox.message_id(event.uuid, pk) for pk in _known_endpoints}),
        preview=text[:200],
        conversation=conversation_id,
        visitor=visitor.pk,
        channel=channel.pk,
    )
    return params, message


async def send(
    *, channel, visitor, conversation_id: int, text: str, client_id: str, answer
) -> Message | None:
    """Store a checked client message and publish it; None when the ORM path must run.

    ``answer`` (``events.Answer``) is told the events for the sending socket.
    """
    global _STATEMENT
    if _STATEMENT is None:
        _STATEMENT = _statement()
    params, message = _params(
        channel=channel,
        visitor=visitor,
        conversation_id=conversation_id,
        text=text,
        client_id=client_id,
    )
    try:
        async with pgasync.connection() as conn:
            cursor = await conn.execute(_STATEMENT, params)
            row = await cursor.fetchone()
    except psycopg.IntegrityError:
        return None  # a concurrent copy of this frame won: the ORM path returns it
    except psycopg.errors.LockNotAvailable:
        return None  # another transaction holds the conversation: the ORM path waits its turn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        # Classified by the cause (core/unavailable.py): an outage, or the statement's problem.
        answered = getattr(exc, "sqlstate", None) is not None
        what = "the statement was refused" if answered else "the database cannot be reached"
        raise OperationalError(f"{what}: {type(exc).__name__}") from exc
    if row is None:
        return None
    conversation, known_name, deliveries = _conversation(row)
    message.pk = row[0]
    message._state.adding = False
    message._state.db = connection.alias
    conversation.visitor = visitor
    conversation.channel = channel
    known = None if known_name is None else naming.ClientName(name=known_name)
    operators, visitor_event = message_events(conversation, message, known=known)
    events.publish_committed(
        conversation=conversation, operators=operators, visitor=visitor_event, answer=answer
    )
    if deliveries:
        webhook_tasks.kick_soon()
    return message


def _conversation(row) -> tuple[Conversation, str | None, int]:
    user = get_user_model()
    conversation_fields = Conversation._meta.concrete_fields
    user_fields = user._meta.concrete_fields
    start = 1 + len(conversation_fields)
    end = start + len(user_fields)
    conversation = Conversation.from_db(
        connection.alias, [f.attname for f in conversation_fields], row[1:start]
    )
    if row[start] is not None:  # the assignee, as select_related would have set it
        conversation.assignee = user.from_db(
            connection.alias, [f.attname for f in user_fields], row[start:end]
        )
    else:
        conversation.assignee = None
    return conversation, row[end], row[end + 1]


async def learn_endpoints() -> None:
    """Read the active webhook endpoints again (after the ORM path wrote a message)."""
    global _known_endpoints
    if not pgasync.available():
        return
    try:
        async with pgasync.connection() as conn:
            cursor = await conn.execute(
                f"SELECT id FROM {_table(WebhookEndpoint)} WHERE is_active ORDER BY id"
            )
            _known_endpoints = tuple(pk for (pk,) in await cursor.fetchall())
    except (psycopg.Error, PoolTimeout):
        pass  # the next fallback tries again; until then unknown endpoints take the ORM path
