"""What a (re)connecting widget needs, read in one database round trip.

After a deploy, a restart or a Redis blip every open widget reconnects at once, so the
``ready`` frame must cost as little as possible: one statement finds the visitor (not erased)
on the active channel with an enabled live chat connector, and annotates its latest
conversation, the newest message id it could have missed, its latest consent record and the
channel's current consent version. A second statement runs only when there is something to
send: missed messages (or the history of a fresh page), or the consent offer when one is due.

On PostgreSQL a reconnecting widget's first statement runs from the event loop, for many
widgets at once (``resume_pg``): no thread hop, and prepared once per pooled connection, so the
server does not plan its seven subqueries again for every widget. Django's connection
(``load_visitor``) stays the path on SQLite and for ``sync`` frames; both build the visitor
from the same statement text and the same row conversion.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections

from openline.consent.models import AgreementVersion, ConsentRecord, ConsentState
from openline.conversations import events
from openline.conversations.models import Conversation, Message, Visitor
from openline.livechat import tokens
from openline.openchannels.hours import hours_state
from openline.openchannels.models import Connector, ConnectorKind, OpenChannel
from openline.openchannels.policy import consent_offer, offer_payload

HISTORY_LIMIT = 200
MISSED_LIMIT = 500
# What ready_frame reads besides the two rows, in this order after their columns.
# Where the visitor's public id is in a row (rows start with the visitor's columns).
PUBLIC_ID_COLUMN = [f.name for f in Visitor._meta.concrete_fields].index("public_id")
EXTRA = (
    "resume_conversation",
    "resume_status",
    "resume_closed_reason",
    "resume_newest",
    "resume_consent_state",
    "resume_consent_version",
    "resume_current_version",
)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _col(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def _build_sql() -> str:
    """The statement, written once per process from the models' table and column names.

    Hand-written rather than an annotated queryset: building and compiling seven subqueries
    through the ORM cost more CPU per connection than everything else on the connect path.
    Plain SQL that SQLite and PostgreSQL both run; every subquery follows an index.
    """
    v, ch, cv, m = Visitor, OpenChannel, Conversation, Message
    rec, ver, con = ConsentRecord, AgreementVersion, Connector
    q = connection.ops.quote_name
    vcols = ", ".join(f"v.{q(str(f.column))}" for f in v._meta.concrete_fields)
    ccols = ", ".join(f"ch.{q(str(f.column))}" for f in ch._meta.concrete_fields)
    conv_of_visitor = f"{_col(cv, 'visitor')} = v.{_col(v, 'id')} AND {_col(cv, 'channel')} = v.{_col(v, 'channel')}"
    return f"""
SELECT {vcols}, {ccols},
  cv.{_col(cv, "id")}, cv.{_col(cv, "status")}, cv.{_col(cv, "closed_reason")},
  (SELECT MAX(m.{_col(m, "id")}) FROM {_table(m)} m WHERE m.{_col(m, "conversation")} IN
     (SELECT {_col(cv, "id")} FROM {_table(cv)} WHERE {conv_of_visitor})),
  r.{_col(rec, "state")}, r.{_col(rec, "version")},
  (SELECT av.{_col(ver, "id")} FROM {_table(ver)} av
     WHERE av.{_col(ver, "agreement")} = ch.{_col(ch, "agreement")}
     ORDER BY av.{_col(ver, "number")} DESC LIMIT 1)
FROM {_table(v)} v
JOIN {_table(ch)} ch ON ch.{_col(ch, "id")} = v.{_col(v, "channel")}
LEFT JOIN {_table(cv)} cv ON cv.{_col(cv, "id")} =
  (SELECT MAX({_col(cv, "id")}) FROM {_table(cv)} WHERE {conv_of_visitor})
LEFT JOIN {_table(rec)} r ON r.{_col(rec, "id")} =
  (SELECT r2.{_col(rec, "id")} FROM {_table(rec)} r2
     WHERE r2.{_col(rec, "visitor")} = v.{_col(v, "id")}
       AND r2.{_col(rec, "agreement")} = ch.{_col(ch, "agreement")}
     ORDER BY r2.{_col(rec, "created_at")} DESC, r2.{_col(rec, "id")} DESC LIMIT 1)
WHERE {{where}} AND v.{_col(v, "erased_at")} IS NULL
  AND ch.{_col(ch, "is_active")} = %s
  AND EXISTS (SELECT 1 FROM {_table(con)} k WHERE k.{_col(con, "channel")} = ch.{_col(ch, "id")}
              AND k.{_col(con, "kind")} = %s AND k.{_col(con, "is_enabled")} = %s)
"""


_compiled: dict[str, tuple] = {}


def _plan():
    """Return (sql by key, converters of each row's columns, the connection they were made for).

    Kept per database engine. The event loop's path reads it too: looking up Django's
    connection there would make a connection object for every socket's task.
    """
    engine = settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"]
    plan = _compiled.get(engine)
    if plan is None:
        base = _build_sql()
        q = connection.ops.quote_name
        sql = {
            "token": base.replace(
                "{where}",
                f"v.{_col(Visitor, 'public_id')} = %s AND ch.{_col(OpenChannel, 'code')} = %s",
            ),
            "pk": base.replace("{where}", f"v.{q(Visitor._meta.pk.column)} = %s"),
            # PostgreSQL, many widgets of one channel at once (resume_pg).
            "tokens": base.replace(
                "{where}",
                f"v.{_col(Visitor, 'public_id')} = ANY(%s) AND ch.{_col(OpenChannel, 'code')} = %s",
            ),
        }
        fields = [*Visitor._meta.concrete_fields, *OpenChannel._meta.concrete_fields]
        converters = []
        for field in fields:
            column = field.get_col("x")
            found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
            converters.append((column, found))
        plan = _compiled[engine] = (sql, converters, connections[DEFAULT_DB_ALIAS])
    return plan


def statements() -> dict[str, str]:
    """The statements by key: ``token``, ``pk`` and (PostgreSQL) ``tokens``."""
    return _plan()[0]


def flags() -> list[Any]:
    """The parameters every statement ends with (active channel, enabled live chat)."""
    return _flags()


def _flags() -> list[Any]:
    return [True, str(ConnectorKind.LIVECHAT.value), True]


def _fetch(key: str, params: list[Any]) -> Visitor | None:
    sql = _plan()[0]
    with connection.cursor() as cursor:
        cursor.execute(sql[key], [*params, *_flags()])
        row = cursor.fetchone()
    return None if row is None else _visitor(row)


def visitor_from_row(row) -> Visitor:
    """Build a visitor from a row of one of ``statements()`` (a new instance each time)."""
    return _visitor(row)


def _visitor(row) -> Visitor:
    """Build the visitor, its channel and the ``resume_*`` annotations from one row."""
    _, converters, wrapper = _plan()
    values = list(row)
    for i, (column, found) in enumerate(converters):
        for convert in found:
            values[i] = convert(values[i], column, wrapper)
    nv = len(Visitor._meta.concrete_fields)
    nc = len(OpenChannel._meta.concrete_fields)
    visitor = Visitor.from_db(
        DEFAULT_DB_ALIAS, [f.attname for f in Visitor._meta.concrete_fields], values[:nv]
    )
    channel = OpenChannel.from_db(
        DEFAULT_DB_ALIAS,
        [f.attname for f in OpenChannel._meta.concrete_fields],
        values[nv : nv + nc],
    )
    visitor.channel = channel
    for name, value in zip(EXTRA, values[nv + nc :], strict=True):
        setattr(visitor, name, value)
    return visitor


def public_key(public_id: str):
    """The database value of a token's visitor id, or None when it is not one."""
    return _public_key(public_id)


def _public_key(public_id: str):
    try:
        return Visitor._meta.get_field("public_id").get_db_prep_value(
            uuid.UUID(hex=public_id), _plan()[2]
        )
    except (ValueError, TypeError):
        return None


def load_visitor(*, code: str, public_id: str) -> Visitor | None:
    """Return the visitor of a valid token, with what ``ready_frame`` needs, or None.

    None when the visitor is erased or unknown, the channel inactive, or its live chat
    connector missing or disabled: the socket is then refused. Nothing here is cached.
    """
    key = _public_key(public_id)
    return None if key is None else _fetch("token", [key, code])


def reload_visitor(visitor: Visitor) -> Visitor | None:
    """Read a connected visitor's state again (a ``sync`` frame), or None once erased."""
    return _fetch("pk", [visitor.pk])


def conversation_state(visitor: Visitor) -> dict | None:
    if visitor.resume_conversation is None:  # type: ignore[attr-defined]
        return None
    return {
        "id": visitor.resume_conversation,  # type: ignore[attr-defined]
        "status": visitor.resume_status,  # type: ignore[attr-defined]
        "closed_reason": visitor.resume_closed_reason,  # type: ignore[attr-defined]
    }


def _missed_any(visitor: Visitor, last_id: int) -> bool:
    """Tell whether the ``ready`` frame has messages to read (a second statement)."""
    if last_id:
        newest = visitor.resume_newest  # type: ignore[attr-defined]
        return newest is not None and newest > last_id
    return visitor.resume_conversation is not None  # type: ignore[attr-defined]


def _consent_due(visitor: Visitor) -> tuple[bool, bool]:
    """Return (a consent is required now, a consent is in force), from the annotated row."""
    channel = visitor.channel
    state = visitor.resume_consent_state  # type: ignore[attr-defined]
    in_force = state == ConsentState.GIVEN
    current = visitor.resume_current_version  # type: ignore[attr-defined]
    # The rule of policy.needs_consent, from the annotated latest record and current version.
    required = (
        channel.consent_enabled
        and channel.agreement_id is not None
        and current is not None
        and not (in_force and visitor.resume_consent_version == current)  # type: ignore[attr-defined]
    )
    return bool(required), in_force


def needs_queries(visitor: Visitor, last_id: int) -> bool:
    """Tell whether ``ready_frame`` reads the database beyond the visitor's row.

    It does when messages were missed (or a fresh page asks for the history) and when a
    consent is due (the offer and whether an older consent was given); a returning widget
    that missed nothing gets its frame from the one row, without a thread hop.
    """
    return _missed_any(visitor, last_id) or _consent_due(visitor)[0]


def _messages(visitor: Visitor, last_id: int) -> list:
    if not _missed_any(visitor, last_id):
        return []  # nothing was missed: no second statement
    if last_id:
        return list(
            Message.objects.filter(
                conversation__visitor=visitor,
                conversation__channel_id=visitor.channel_id,
                id__gt=last_id,
            )
            .select_related("author")
            .order_by("id")[:MISSED_LIMIT]
        )
    current = visitor.resume_conversation  # type: ignore[attr-defined]
    latest = (
        Message.objects.filter(conversation_id=current)
        .select_related("author")
        .order_by("-id")[:HISTORY_LIMIT]
    )
    return list(latest)[::-1]


def ready_frame(*, visitor: Visitor, last_id: int, language: str, base_url: str = "") -> dict:
    """Build the ``ready`` frame: a fresh token, the conversation, missed messages, the gate."""
    channel = visitor.channel
    required, in_force = _consent_due(visitor)
    current = visitor.resume_current_version  # type: ignore[attr-defined]
    changed = bool(
        required
        and ConsentRecord.objects.filter(
            visitor=visitor, agreement=channel.agreement_id, state=ConsentState.GIVEN
        )
        .exclude(version_id=current)
        .exists()
    )
    return {
        "type": "ready",
        "token": tokens.make_token(visitor=visitor, channel=channel),
        "visitor": visitor.public_id.hex,
        "conversation": conversation_state(visitor),
        "messages": [events.message_payload(m) for m in _messages(visitor, last_id)],
        "consent_required": required,
        "consent": (
            offer_payload(consent_offer(channel, language), base_url=base_url) if required else None
        ),
        # A consent in force keeps the receipt and withdrawal at hand, even for an older version.
        "has_consent": in_force and channel.agreement_id is not None,
        "consent_changed": changed,
        "hours": hours_state(channel),
    }
