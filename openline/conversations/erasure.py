"""Erasing a visitor's personal data and their conversations' messages (GDPR Art. 17).

The visitor row and its conversations stay: consent records point at them and
are the company's proof (Art. 7(1), 17(3)(b) and (e)); they are never touched.
After erasure the visitor shows as "Deleted client <pseudonymous id>".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from openline.conversations.events import visitor_group
from openline.conversations.models import (
    Conversation,
    ConversationNote,
    ConversationStatus,
    Message,
    Visitor,
)
from openline.conversations.outbox import forget_client

logger = logging.getLogger(__name__)

ERASED_REASON = "The client's data was deleted"
# The channel-layer message that closes a visitor's open sockets (the widget's consumer
# handles it as ``visitor_sockets_close``).
SOCKETS_CLOSE_TYPE = "visitor.sockets.close"

# Sent inside the erasing transaction, before the identity is blanked, with keyword
# arguments ``visitor`` (still carrying ``external_id``), ``channel_id``, ``origin`` and
# ``external_id``: faces that keep copies of what the client sent (the connectors' stored
# events) forget them in the same transaction.
visitor_erased = Signal()


@dataclass(frozen=True)
class VisitorErasure:
    """What erasing one visitor removed."""

    visitor_public_id: str
    conversations: int
    messages: int
    already_erased: bool


@transaction.atomic
def erase_visitor(*, actor, visitor: Visitor) -> VisitorErasure:
    """Blank the visitor's personal data and delete the messages of their conversations."""
    from openline.conversations.actions import close_conversation

    visitor = Visitor.objects.select_for_update().get(pk=visitor.pk)
    # Every conversation's row, in order, before any message is touched: the order in which
    # a message, a reply and a read mark take them (conversation, then its messages).
    conversation_ids = list(
        Conversation.objects.select_for_update()
        .filter(visitor=visitor)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    # Close open chats first (the widget and the inbox are told), so nothing new is
    # written into a conversation whose history is being removed.
    for conversation in visitor.conversations.exclude(status=ConversationStatus.CLOSED):
        close_conversation(conversation=conversation, actor=None, reason=ERASED_REASON)
    deleted, _ = Message.objects.filter(conversation_id__in=conversation_ids).delete()
    # Operators' private notes may name or describe the client: they go with the messages.
    ConversationNote.objects.filter(conversation_id__in=conversation_ids).delete()
    # Messenger sends keep the client's platform id and the text sent: forget them too.
    forget_client(visitor=visitor)
    # The inbox keeps a preview of the newest message: it is message text too. The page the
    # client was on can carry personal data in its query (?email=...): it goes as well (the
    # consent records keep their own address as proof).
    Conversation.objects.filter(pk__in=conversation_ids).update(
        last_message_preview="", page_url=""
    )
    already = visitor.erased_at is not None
    # The client's open widgets are closed once this commits (they start over as a new client).
    group = visitor_group(visitor)
    transaction.on_commit(lambda: _close_sockets(group))
    if not already:
        visitor_erased.send(
            sender=Visitor,
            visitor=visitor,
            channel_id=visitor.channel_id,
            origin=visitor.origin,
            external_id=visitor.external_id,
        )
        visitor.name = ""
        visitor.email = ""
        visitor.phone = ""
        visitor.external_id = ""
        visitor.user_agent = ""
        visitor.erased_at = timezone.now()
        visitor.save(
            update_fields=["name", "email", "phone", "external_id", "user_agent", "erased_at"]
        )
    return VisitorErasure(
        visitor_public_id=str(visitor.public_id),
        conversations=len(conversation_ids),
        messages=deleted,
        already_erased=already,
    )


def _close_sockets(group: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": SOCKETS_CLOSE_TYPE})
    except Exception as exc:  # noqa: BLE001 - committed; every frame is checked again anyway
        logger.warning("erased client's sockets not told: %s", type(exc).__name__)
