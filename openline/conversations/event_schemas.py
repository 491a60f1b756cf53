"""The shape of every realtime event the conversation actions publish, per audience.

Each event type has one schema for the operators' payload (sent to the Open Channel's
inbox group) and one for the client's payload (sent to the visitor's group); ``None`` means
that audience never gets the event. Checking is strict, in the spirit of Zulip's
``event_schema``: a missing key, an unknown key or a value of the wrong type is an error,
so a payload cannot change without its schema (and the clients reading it) changing too.

Faces and new actions add their events with ``register``; tests check what an action
publishes with ``check_event`` (see ``openline/conversations/tests/verify_events.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from openline.conversations.events import ADMINISTRATORS, CHANNEL_GROUP_PREFIX, VISITOR_GROUP_PREFIX
from openline.conversations.models import ConversationStatus, DeliveryState, SenderKind

OPERATORS = "operators"
VISITOR = "visitor"


class SchemaError(AssertionError):
    """An event does not match its schema; the message says where and why."""


class Spec:
    """A check of one JSON value."""

    def check(self, value, path: str) -> None:  # pragma: no cover - every spec overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class Typed(Spec):
    """A value of one of ``types`` (booleans are not integers here, unlike in Python)."""

    types: tuple[type, ...]

    def check(self, value, path: str) -> None:
        if isinstance(value, bool) and bool not in self.types:
            raise SchemaError(f"{path}: expected {self._names()}, got a boolean")
        if not isinstance(value, self.types):
            raise SchemaError(f"{path}: expected {self._names()}, got {type(value).__name__}")

    def _names(self) -> str:
        return " or ".join(t.__name__ for t in self.types)


@dataclass(frozen=True)
class Nullable(Spec):
    """``None`` or a value matching ``inner``."""

    inner: Spec

    def check(self, value, path: str) -> None:
        if value is not None:
            self.inner.check(value, path)


@dataclass(frozen=True)
class Choice(Spec):
    """One of a fixed set of strings (a TextChoices field, an event's mode)."""

    values: frozenset[str]

    def check(self, value, path: str) -> None:
        if not isinstance(value, str) or value not in self.values:
            raise SchemaError(f"{path}: expected one of {sorted(self.values)}, got {value!r}")


@dataclass(frozen=True)
class IsoTime(Spec):
    """A timezone-aware ISO 8601 timestamp, as ``events._iso`` writes it."""

    def check(self, value, path: str) -> None:
        if not isinstance(value, str):
            raise SchemaError(f"{path}: expected an ISO timestamp, got {type(value).__name__}")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise SchemaError(f"{path}: {value!r} is not an ISO timestamp") from None
        if parsed.tzinfo is None:
            raise SchemaError(f"{path}: {value!r} has no time zone")


@dataclass(frozen=True)
class ListOf(Spec):
    """A list whose every item matches ``item``."""

    item: Spec

    def check(self, value, path: str) -> None:
        if not isinstance(value, list):
            raise SchemaError(f"{path}: expected a list, got {type(value).__name__}")
        for index, entry in enumerate(value):
            self.item.check(entry, f"{path}[{index}]")


@dataclass(frozen=True)
class Obj(Spec):
    """A JSON object with exactly the ``required`` keys, plus any of the ``optional`` ones."""

    required: dict[str, Spec]
    optional: dict[str, Spec] = field(default_factory=dict)

    def check(self, value, path: str) -> None:
        if not isinstance(value, dict):
            raise SchemaError(f"{path}: expected an object, got {type(value).__name__}")
        missing = sorted(set(self.required) - set(value))
        if missing:
            raise SchemaError(f"{path}: missing keys {missing}")
        unknown = sorted(set(value) - set(self.required) - set(self.optional))
        if unknown:
            raise SchemaError(f"{path}: unknown keys {unknown}")
        for key, spec in {**self.required, **self.optional}.items():
            if key in value:
                spec.check(value[key], f"{path}.{key}")

    def extend(self, *, required: dict | None = None, optional: dict | None = None) -> Obj:
        """Return a copy with more keys (for an event that adds fields to a shared shape)."""
        return Obj({**self.required, **(required or {})}, {**self.optional, **(optional or {})})


def Literal(value: str) -> Choice:  # noqa: N802 - reads like a type in the schemas below
    """Exactly the string ``value`` (an event's ``type``)."""
    return Choice(frozenset({value}))


INT = Typed((int,))
STR = Typed((str,))
TIME = IsoTime()
STATUS = Choice(frozenset(ConversationStatus.values))
SENDER = Choice(frozenset(SenderKind.values))
# The two people of a chat: marks and typing never come from the system.
PARTY = Choice(frozenset({SenderKind.VISITOR, SenderKind.OPERATOR}))

# events.conversation_payload: a row of the operator inbox.
CONVERSATION = Obj(
    {
        "id": INT,
        "channel": INT,
        "channel_name": STR,
        # The client's name when the CRM knows it, else the pseudonym (never once erased).
        "visitor": STR,
        "visitor_pseudonym": STR,
        "status": STATUS,
        "assignee": Nullable(INT),
        "assignee_name": STR,
        "page_url": STR,
        "last_message_at": Nullable(TIME),
        # Blank until the first message.
        "last_message_sender": Choice(frozenset({*SenderKind.values, ""})),
        "preview": STR,
        "unread": INT,
        "closed_reason": STR,
    }
)
# What the client learns of their own conversation: never the operators' names or counts.
CONVERSATION_FOR_VISITOR = Obj({"id": INT, "status": STATUS, "closed_reason": STR})
# events.message_payload: the same for both audiences.
MESSAGE = Obj(
    {
        "id": INT,
        "conversation": INT,
        "client_id": STR,
        "sender": SENDER,
        "author": STR,
        "avatar": STR,
        "text": STR,
        "created_at": TIME,
        "delivered_at": Nullable(TIME),
        "read_at": Nullable(TIME),
    }
)


@dataclass(frozen=True)
class EventSchema:
    """One event type: its payload per audience, and whether it waits for the commit."""

    type: str
    operators: Obj | None
    visitor: Obj | None
    # Ephemeral events (typing) store nothing, so they leave at once.
    after_commit: bool = True

    def for_audience(self, audience: str) -> Obj | None:
        """Return the payload schema ``audience`` (OPERATORS or VISITOR) receives, or None."""
        if audience not in (OPERATORS, VISITOR):
            raise ValueError(f"unknown audience {audience!r}")
        return self.operators if audience == OPERATORS else self.visitor


EVENT_SCHEMAS: dict[str, EventSchema] = {}


def register(schema: EventSchema) -> EventSchema:
    """Add an event type's schema; a type is described once."""
    existing = EVENT_SCHEMAS.get(schema.type)
    if existing is not None and existing != schema:
        raise ValueError(f"event type {schema.type!r} already has another schema")
    for payload in (schema.operators, schema.visitor):
        if payload is not None and payload.required.get("type") != Literal(schema.type):
            raise ValueError(f"the {schema.type!r} payloads must require type={schema.type!r}")
    EVENT_SCHEMAS[schema.type] = schema
    return schema


def audience_of(group: str) -> str:
    """Tell who a channel-layer group reaches: the operators of a channel or one client."""
    if group.startswith(CHANNEL_GROUP_PREFIX) or group == ADMINISTRATORS:
        return OPERATORS
    if group.startswith(VISITOR_GROUP_PREFIX):
        return VISITOR
    raise SchemaError(f"events are sent to an unknown group {group!r}")


def check_event(event, *, audience: str) -> EventSchema:
    """Check one published event against its type's schema for ``audience``; return the schema."""
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise SchemaError(f"an event must be an object with a string type, got {event!r}")
    schema = EVENT_SCHEMAS.get(event["type"])
    if schema is None:
        raise SchemaError(f"event type {event['type']!r} has no schema: add it to event_schemas")
    payload = schema.for_audience(audience)
    if payload is None:
        raise SchemaError(f"{event['type']!r} events are not meant for the {audience}")
    payload.check(event, f"{event['type']}[{audience}]")
    return schema


def _state_change(kind: str, *, to_visitor: bool = True, **extra: Spec) -> EventSchema:
    # actions.common.publish_conversation: the inbox row for operators, the bare state for the client.
    return EventSchema(
        type=kind,
        operators=Obj({"type": Literal(kind), "conversation": CONVERSATION, **extra}),
        visitor=(
            Obj({"type": Literal(kind), "conversation": CONVERSATION_FOR_VISITOR})
            if to_visitor
            else None
        ),
    )


register(_state_change("conversation.started"))
register(_state_change("conversation.closed"))
# Who transferred it is the operators' business only.
register(_state_change("conversation.transferred", to_visitor=False, by=STR))
register(
    EventSchema(
        type="message",
        operators=Obj(
            {"type": Literal("message"), "message": MESSAGE, "conversation": CONVERSATION}
        ),
        visitor=Obj({"type": Literal("message"), "message": MESSAGE}),
    )
)
_MARKS = Obj(
    {
        "type": Literal("marks"),
        "conversation": INT,
        # Whose messages were marked: the other side of the reader.
        "sender": PARTY,
        "mark": Choice(frozenset({"delivered", "read"})),
        "up_to": INT,
    }
)
register(
    EventSchema(
        type="marks",
        # With the client's messages marked, operators also get the new unread count.
        operators=_MARKS.extend(optional={"conversation_state": CONVERSATION}),
        visitor=_MARKS,
    )
)
_TYPING = Obj({"type": Literal("typing"), "conversation": INT, "sender": PARTY, "name": STR})
# Operator typing reaches the client, client typing the operators; the shape is the same.
register(EventSchema(type="typing", operators=_TYPING, visitor=_TYPING, after_commit=False))
# outbox.publish_delivery: how a messenger message stands (send_reply queues it).
register(
    EventSchema(
        type="delivery",
        operators=Obj(
            {
                "type": Literal("delivery"),
                "conversation": INT,
                "messages": ListOf(
                    Obj(
                        {
                            "id": INT,
                            "delivery_state": Choice(frozenset({*DeliveryState.values, ""})),
                            "delivery_error": STR,
                            "outbox": Nullable(INT),
                        }
                    )
                ),
            }
        ),
        visitor=None,
    )
)
# notes.add_note: a private note, for the channel's operators only; never for the client.
NOTE = Obj(
    {
        "id": INT,
        "conversation": INT,
        "client_id": STR,
        "author": STR,
        "author_id": Nullable(INT),
        "text": STR,
        "created_at": TIME,
    }
)
register(
    EventSchema(
        type="note.added",
        operators=Obj({"type": Literal("note.added"), "note": NOTE}),
        visitor=None,
    )
)
