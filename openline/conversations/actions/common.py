"""What every conversation action shares: refusals, text checks and event publishing."""

from __future__ import annotations

from openline.conversations import events
from openline.conversations.models import Conversation, ConversationStatus

MAX_TEXT = 4000
MAX_CLIENT_ID = 64


class ActionError(Exception):
    """A refused action, with a stable code for error frames and a sentence for people."""

    def __init__(self, code: str, message: str, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def check_text(text, client_id) -> tuple[str, str]:
    """Return (text, client_id) if a client's or operator's message may be stored; else refuse."""
    if not isinstance(text, str) or not text.strip():
        raise ActionError("empty", "Write a message first.")
    if len(text) > MAX_TEXT:
        raise ActionError("too_long", f"A message can be at most {MAX_TEXT} characters.")
    client_id = client_id if isinstance(client_id, str) else ""
    if len(client_id) > MAX_CLIENT_ID:
        raise ActionError("bad_client_id", f"client_id can be at most {MAX_CLIENT_ID} characters.")
    return text, client_id


def refuse_if_closed(conversation: Conversation, reason: str) -> None:
    """Refuse to write into a closed conversation, saying ``reason``."""
    if conversation.status == ConversationStatus.CLOSED:
        raise ActionError("conversation_closed", reason, conversation=conversation.id)


def unread(conversation) -> int:
    """Return the client messages the operators have not read (kept under the row lock)."""
    return conversation.unread_count


def conversation_events(
    conversation, *, kind: str, extra: dict | None = None, visitor: bool = True, **naming
) -> tuple[dict, dict | None]:
    """The events of a conversation state change: (the operators', the client's or None).

    ``naming`` goes to ``events.conversation_payload`` (``known``: the client's name when the
    caller already has it).
    """
    payload = {
        "type": kind,
        "conversation": events.conversation_payload(
            conversation, unread=unread(conversation), **naming
        ),
    }
    if extra:
        payload.update(extra)
    visitor_event = None
    if visitor:
        visitor_event = {
            "type": kind,
            "conversation": {
                "id": conversation.id,
                "status": conversation.status,
                "closed_reason": conversation.closed_reason,
            },
        }
    return payload, visitor_event


def publish_conversation(
    conversation, *, kind: str, extra: dict | None = None, visitor: bool = True
) -> None:
    """Publish a conversation state change (``kind``) to operators and, unless told not, the client."""
    payload, visitor_event = conversation_events(
        conversation, kind=kind, extra=extra, visitor=visitor
    )
    events.publish_after_commit(conversation=conversation, operators=payload, visitor=visitor_event)


def message_events(conversation, message, **naming) -> tuple[dict, dict]:
    """The events of a stored message: (the operators', the client's).

    ``naming`` goes to ``events.conversation_payload`` (``known``: the client's name when
    the caller already has it).
    """
    payload = events.message_payload(message)
    operators = {
        "type": "message",
        "message": payload,
        "conversation": events.conversation_payload(
            conversation, unread=unread(conversation), **naming
        ),
    }
    return operators, {"type": "message", "message": payload}


def publish_message(conversation, message) -> None:
    """Publish a stored message to the operators and the client, after commit."""
    operators, visitor = message_events(conversation, message)
    events.publish_after_commit(conversation=conversation, operators=operators, visitor=visitor)
