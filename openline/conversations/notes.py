"""Private notes: what operators tell each other inside a conversation.

A note is stored apart from the messages (``ConversationNote``), so nothing that reads
messages for the client — the visitor's websocket, its history, the messenger outbox,
receipts, exports — can ever pick one up. ``actions.add_note`` (in ``actions/notes.py``) is
the only write path; its event, ``note.added``, goes to the Open Channel's operators only.

This module holds the read-side helpers and imports nothing from ``actions``: the actions
depend on it, never the other way round, so either can be imported first.
"""

from __future__ import annotations

from openline.accounts.models import Role
from openline.conversations.models import Conversation, ConversationNote


def can_write_notes(user, conversation: Conversation) -> bool:
    """Tell whether ``user`` may write notes here: administrators and the channel's operators."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.role == Role.ADMINISTRATOR:
        return True
    return user.role == Role.OPERATOR and conversation.channel.operators.filter(pk=user.pk).exists()


def note_payload(note: ConversationNote) -> dict:
    """Serialise a note for the operators' websockets; the text stays raw, escaped by the inbox."""
    return {
        "id": note.id,
        "conversation": note.conversation_id,
        "client_id": note.client_id,
        "author": str(note.author) if note.author else "",
        "author_id": note.author_id,
        "text": note.text,
        "created_at": note.created_at.isoformat(),
    }


def notes_between(conversation: Conversation, *, after_id: int = 0, limit: int = 500) -> list:
    """Return the conversation's notes newer than ``after_id``, oldest first."""
    return list(
        conversation.notes.filter(id__gt=after_id).select_related("author").order_by("id")[:limit]
    )
