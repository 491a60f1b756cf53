"""Realtime events: channel-layer groups and the JSON shapes sent to websockets.

Only ``openline.conversations.actions`` publishes, always after the transaction
commits, so a client never sees a message that could still be rolled back.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

ALL_CHANNELS_GROUP = "inbox.all"
EVENT_TYPE = "openline.event"


def visitor_group(visitor) -> str:
    """Name the group of one visitor's websockets (their own conversations only)."""
    return f"visitor.{visitor.public_id.hex}"


def channel_group(channel_id: int) -> str:
    """Name the group of the operators of one Open Channel."""
    return f"inbox.ch.{channel_id}"


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def message_payload(message) -> dict:
    """Serialise a message for websockets; the text stays raw and is escaped by the client."""
    author = message.author
    return {
        "id": message.id,
        "conversation": message.conversation_id,
        "client_id": message.client_id,
        "sender": message.sender,
        "author": str(author) if author else "",
        "text": message.text,
        "created_at": _iso(message.created_at),
        "delivered_at": _iso(message.delivered_at),
        "read_at": _iso(message.read_at),
    }


def conversation_payload(conversation, *, unread: int | None = None) -> dict:
    """Serialise a conversation for the operator inbox."""
    assignee = conversation.assignee
    return {
        "id": conversation.id,
        "channel": conversation.channel_id,
        "channel_name": conversation.channel.name,
        "visitor": str(conversation.visitor),
        "status": conversation.status,
        "assignee": conversation.assignee_id,
        "assignee_name": str(assignee) if assignee else "",
        "page_url": conversation.page_url,
        "last_message_at": _iso(conversation.last_message_at),
        "last_message_sender": conversation.last_message_sender,
        "preview": conversation.last_message_preview,
        "unread": unread,
        "closed_reason": conversation.closed_reason,
    }


def publish_after_commit(*, conversation, operators: dict | None, visitor: dict | None) -> None:
    """Send ``operators`` to the channel's inbox groups and ``visitor`` to the visitor, after commit."""
    groups: list[tuple[str, dict]] = []
    if operators is not None:
        groups.append((channel_group(conversation.channel_id), operators))
        groups.append((ALL_CHANNELS_GROUP, operators))
    if visitor is not None:
        groups.append((visitor_group(conversation.visitor), visitor))
    transaction.on_commit(lambda: send_now(groups))


def send_now(groups: list[tuple[str, dict]]) -> None:
    """Send events to groups at once; used only for ephemeral events and by on_commit."""
    if not groups:
        return
    layer = get_channel_layer()

    async def _send() -> None:
        results = await asyncio.gather(
            *(
                layer.group_send(group, {"type": EVENT_TYPE, "event": event})
                for group, event in groups
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Exception):
                # The message is stored; clients resynchronise on reconnect, so log and go on.
                logger.warning("channel layer send failed: %s", type(result).__name__)

    async_to_sync(_send)()
