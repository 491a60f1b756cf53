"""Writing private notes: the only write path for ``ConversationNote``.

The helpers (who may write, how a note is serialised, reading notes) live in
``openline.conversations.notes``; this module depends on them, never the other way round, so
either module can be imported first.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from openline.conversations import events
from openline.conversations.actions.common import MAX_CLIENT_ID, MAX_TEXT, ActionError
from openline.conversations.models import Conversation, ConversationNote
from openline.conversations.notes import can_write_notes, note_payload


def add_note(
    *, conversation: Conversation, actor, text, client_id: str = ""
) -> tuple[ConversationNote, bool]:
    """Store a private note by ``actor`` and tell the channel's operators; return (note, created)."""
    if not can_write_notes(actor, conversation):
        raise ActionError("forbidden", "Only this Open Channel's operators can write notes here.")
    if not isinstance(text, str) or not text.strip():
        raise ActionError("empty", "Write a note first.")
    if len(text) > MAX_TEXT:
        raise ActionError("too_long", f"A note can be at most {MAX_TEXT} characters.")
    client_id = client_id if isinstance(client_id, str) else ""
    if len(client_id) > MAX_CLIENT_ID:
        raise ActionError("bad_client_id", f"client_id can be at most {MAX_CLIENT_ID} characters.")
    if client_id:
        existing = ConversationNote.objects.filter(
            conversation=conversation, author=actor, client_id=client_id
        ).first()
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            note = ConversationNote.objects.create(
                conversation=conversation, author=actor, text=text, client_id=client_id
            )
    except IntegrityError:
        # The same note sent twice at once (a reconnect): the first one stands.
        note = ConversationNote.objects.get(
            conversation=conversation, author=actor, client_id=client_id
        )
        return note, False
    events.publish_after_commit(
        conversation=conversation,
        operators={"type": "note.added", "note": note_payload(note)},
        visitor=None,
    )
    return note, True
