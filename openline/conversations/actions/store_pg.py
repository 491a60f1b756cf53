"""A client's message stored on PostgreSQL in one statement: the hot path of every chat.

``receive_into`` calls this first on PostgreSQL. One data-modifying statement (one round trip)
checks the conversation (the visitor's own, not closed, no message under this ``client_id``
yet), notes the message as its newest and counts it unread (the row lock of the UPDATE orders
concurrent writers, as ``SELECT … FOR UPDATE`` did), inserts the message, and returns the
conversation with its assignee for the events. When it changes nothing, the caller takes the
ORM path, which tells why (not found, closed, a resent frame); SQLite always takes that path.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection

from openline.conversations.models import Conversation, ConversationStatus, Message, SenderKind


def _columns(model, alias: str) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def _statement() -> str:
    user = get_user_model()
    conversations = connection.ops.quote_name(Conversation._meta.db_table)
    messages = connection.ops.quote_name(Message._meta.db_table)
    users = connection.ops.quote_name(user._meta.db_table)
    inserted = [f for f in Message._meta.concrete_fields if not f.primary_key]
    names = ", ".join(f'"{f.column}"' for f in inserted)
    values = ", ".join(["conv.id"] + ["%s"] * (len(inserted) - 1))
    assert inserted[0].attname == "conversation_id", "the conversation is the first column"
    return f"""
        WITH conv AS (
            UPDATE {conversations} AS c
            SET last_message_at = %s, last_message_sender = %s, last_message_preview = %s,
                unread_count = c.unread_count + 1
            WHERE c.id = %s AND c.visitor_id = %s AND c.status <> %s
              AND NOT EXISTS (
                SELECT 1 FROM {messages} AS m
                WHERE m.conversation_id = c.id AND m.client_id = %s AND m.client_id <> ''
              )
            RETURNING c.*
        ), msg AS (
            INSERT INTO {messages} ({names}) SELECT {values} FROM conv RETURNING id
        )
        SELECT msg.id, {_columns(Conversation, "conv")}, {_columns(user, "u")}
        FROM conv CROSS JOIN msg LEFT JOIN {users} AS u ON u.id = conv.assignee_id
    """


_STATEMENT: str | None = None


def store_visitor_message(
    *, conversation_id: int, visitor, text: str, client_id: str
) -> tuple[Message, Conversation] | None:
    """Store a checked client message in one statement; None if it may not be stored so."""
    global _STATEMENT
    if _STATEMENT is None:
        _STATEMENT = _statement()
    user = get_user_model()
    message = Message(
        conversation_id=conversation_id,
        sender=SenderKind.VISITOR,
        author=None,
        text=text,
        client_id=client_id,
    )
    inserted = [f for f in Message._meta.concrete_fields if not f.primary_key]
    # pre_save fills created_at (auto_now_add) as Model.save would.
    values = [f.get_db_prep_save(f.pre_save(message, True), connection) for f in inserted[1:]]
    created_at = Message._meta.get_field("created_at").get_db_prep_save(
        message.created_at, connection
    )
    params = [
        created_at,
        SenderKind.VISITOR,
        text[:200],
        conversation_id,
        visitor.pk,
        ConversationStatus.CLOSED,
        client_id,
        *values,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_STATEMENT, params)
        row = cursor.fetchone()
    if row is None:
        return None
    conversation_fields = Conversation._meta.concrete_fields
    user_fields = user._meta.concrete_fields
    start = 1 + len(conversation_fields)
    conversation = Conversation.from_db(
        connection.alias, [f.attname for f in conversation_fields], row[1:start]
    )
    if row[start] is not None:  # the assignee, as select_related would have set it
        conversation.assignee = user.from_db(
            connection.alias, [f.attname for f in user_fields], row[start:]
        )
    else:
        conversation.assignee = None
    message.pk = row[0]
    message._state.adding = False
    message._state.db = connection.alias
    return message, conversation
