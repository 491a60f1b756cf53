"""Realtime events: channel-layer groups and the JSON shapes sent to websockets.

Only the conversation actions (``openline.conversations.actions``, ``inbound``, ``outbox``)
publish, always after the transaction commits, so a client never sees a message that could
still be rolled back. ``openline.conversations.event_schemas`` describes every event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextvars import ContextVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from openline.accounts.avatars import avatar_url
from openline.accounts.realtime import ADMINISTRATORS_GROUP
from openline.conversations import naming

logger = logging.getLogger(__name__)

# A channel-layer message carries events already serialised, once, as the JSON text the
# websockets send: {"type": EVENT_TYPE, "text": ..., "origin": ...}, or a batch
# {"type": BATCH_TYPE, "texts": [...], "origins": [...]}. ``origin`` is the channel name of the
# socket that caused the event and was answered directly (see ``SENDER``); it skips its copy.
EVENT_TYPE = "openline.event"
# Who receives an event is told by its group; ``event_schemas`` checks each audience's shape.
VISITOR_GROUP_PREFIX = "visitor."
CHANNEL_GROUP_PREFIX = "inbox.ch."
# Administrators follow every Open Channel through this one group (they join no channel group).
ADMINISTRATORS = ADMINISTRATORS_GROUP


class Answer:
    """What the socket whose frame is being handled is told directly, in commit order.

    The consumer sets ``SENDER`` to one around a writing action (a message, a reply, a note):
    every event that action publishes is also left here, serialised, and the copies Redis
    brings back to this socket (their ``origin``) are skipped. So the sender learns its message
    is stored without waiting for the channel layer, and sees nothing twice.
    """

    def __init__(self, channel_name: str) -> None:
        self.channel_name = channel_name
        self.events: list[tuple[str, str]] = []  # (audience "visitor"/"operators", JSON text)

    def texts(self, audience: str) -> list[str]:
        """Return the events for ``audience`` (the answering socket's kind), in order."""
        return [text for kind, text in self.events if kind == audience]


SENDER: ContextVar[Answer | None] = ContextVar("openline_event_sender", default=None)


def visitor_group(visitor) -> str:
    """Name the group of one visitor's websockets (their own conversations only)."""
    return f"{VISITOR_GROUP_PREFIX}{visitor.public_id.hex}"


def channel_group(channel_id: int) -> str:
    """Name the group of the operators of one Open Channel."""
    return f"{CHANNEL_GROUP_PREFIX}{channel_id}"


def staff_groups(channel_id: int) -> list[str]:
    """Name the groups an operators' event goes to: the channel's operators and all administrators."""
    return [channel_group(channel_id), ADMINISTRATORS]


def encode(event: dict) -> str:
    """Serialise an event as the websockets send it (compact JSON)."""
    return json.dumps(event, separators=(",", ":"))


async def leave_group(layer, group: str, channel_name: str) -> None:
    """Leave a group when a socket closes; a failure only leaves a member that expires later."""
    try:
        await layer.group_discard(group, channel_name)
    except Exception as exc:  # noqa: BLE001 - e.g. the Redis pool is exhausted by a mass disconnect
        logger.info("group_discard failed: %s", type(exc).__name__)


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
        # Derived from the author row (no query): callers select_related("author").
        "avatar": avatar_url(author),
        "text": message.text,
        "created_at": _iso(message.created_at),
        "delivered_at": _iso(message.delivered_at),
        "read_at": _iso(message.read_at),
    }


_RESOLVE = object()


def conversation_payload(conversation, *, unread: int | None = None, known=_RESOLVE) -> dict:
    """Serialise a conversation for the operator inbox, naming the client as the CRM knows them.

    ``known`` is the visitor's ``naming.ClientName`` (or None) when the caller resolved a whole
    page at once; left out, this one visitor is looked up here.
    """
    assignee = conversation.assignee
    visitor = conversation.visitor
    if known is _RESOLVE:
        known = None if visitor.erased_at else naming.client_names([visitor.pk]).get(visitor.pk)
    return {
        "id": conversation.id,
        "channel": conversation.channel_id,
        "channel_name": conversation.channel.name,
        "visitor": naming.label(visitor, known),
        "visitor_pseudonym": str(visitor),
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
    """Send ``operators`` to the channel's staff groups and ``visitor`` to the visitor, after commit.

    While a consumer answers its own frame (``SENDER``), that socket gets these events from
    the consumer and skips the copies that come back through Redis.
    """
    groups = event_groups(conversation, operators, visitor)
    answer = SENDER.get()
    transaction.on_commit(lambda: send_now(groups, answer=answer))


def publish_committed(
    *, conversation, operators: dict | None, visitor: dict | None, answer: Answer | None
) -> None:
    """Send what one autocommit statement has just committed (a client's message from the
    event loop): the same groups as ``publish_after_commit``, at once; ``answer`` is told too."""
    start_publisher()
    send_now(event_groups(conversation, operators, visitor), answer=answer)


def event_groups(
    conversation, operators: dict | None, visitor: dict | None
) -> list[tuple[str, dict]]:
    """Each (group, event) pair: ``operators`` to the staff groups, ``visitor`` to the client."""
    groups: list[tuple[str, dict]] = []
    if operators is not None:
        groups += [(group, operators) for group in staff_groups(conversation.channel_id)]
    if visitor is not None:
        groups.append((visitor_group(conversation.visitor), visitor))
    return groups


class _Publisher:
    """Sends events from the event loop of this server process, in commit order.

    Actions run in Django's worker threads; waiting there for Redis would hold up the next
    database write. The workers hand events to this queue and go on; one task drains it.
    Whatever has queued up meanwhile leaves as one channel-layer message per group, in
    order: under load a busy group costs one Redis round trip per batch, not per event.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task = loop.create_task(self._drain())

    def usable(self) -> bool:
        return not self.loop.is_closed() and self.loop.is_running() and not self.task.done()

    async def _drain(self) -> None:
        layer = get_channel_layer()
        while True:
            batches: dict[str, list[tuple[str, str]]] = {}
            pending = [await self.queue.get()]
            while not self.queue.empty() and len(pending) < MAX_BATCH:
                pending.append(self.queue.get_nowait())
            for items in pending:
                for group, text, origin in items:
                    batches.setdefault(group, []).append((text, origin))
            await _send_batches(layer, batches)


_publisher: _Publisher | None = None


def start_publisher() -> None:
    """Start the in-order publisher on the running loop (websocket consumers call this)."""
    global _publisher
    loop = asyncio.get_running_loop()
    if _publisher is None or _publisher.loop is not loop or not _publisher.usable():
        _publisher = _Publisher(loop)


MAX_BATCH = 200
BATCH_TYPE = "openline.events"


async def _send_batches(layer, batches: dict[str, list[tuple[str, str]]]) -> None:
    try:
        # Openline's Redis layer: every group's message in one round trip per Redis host.
        many = layer.group_send_many
    except AttributeError:
        many = None
    if many is not None:
        try:
            await many([(group, layer_message(items)) for group, items in batches.items()])
        except Exception as exc:  # noqa: BLE001 - logged as each group_send failure is
            _log_failures([exc])
        return
    results = await asyncio.gather(
        *(layer.group_send(group, layer_message(items)) for group, items in batches.items()),
        return_exceptions=True,
    )
    _log_failures(results)


def layer_message(items: list[tuple[str, str]]) -> dict:
    """Build the channel-layer message for serialised events ``(text, origin)`` to one group."""
    if len(items) == 1:
        text, origin = items[0]
        return {"type": EVENT_TYPE, "text": text, "origin": origin}
    return {
        "type": BATCH_TYPE,
        "texts": [text for text, _ in items],
        "origins": [origin for _, origin in items],
    }


async def _send_all(layer, items: list[tuple[str, str, str]]) -> None:
    results = await asyncio.gather(
        *(
            layer.group_send(group, layer_message([(text, origin)]))
            for group, text, origin in items
        ),
        return_exceptions=True,
    )
    _log_failures(results)


def _log_failures(results) -> None:
    for result in results:
        if isinstance(result, Exception):
            # The message is stored; clients resynchronise on reconnect, so log and go on.
            logger.warning("channel layer send failed: %s", type(result).__name__)


def send_now(groups: list[tuple[str, dict]], *, answer: Answer | None = None) -> None:
    """Send events to groups; used for ephemeral events and by on_commit.

    Each event is serialised here, once, however many groups and sockets it reaches. With an
    ``answer`` the sending socket gets its copy from the consumer, not through Redis.
    """
    if not groups:
        return
    origin = answer.channel_name if answer is not None else ""
    texts: dict[int, str] = {}
    answered: set[tuple[int, str]] = set()
    items = []
    for group, event in groups:
        text = texts.get(id(event))
        if text is None:
            text = texts[id(event)] = encode(event)
        items.append((group, text, origin))
        if answer is not None:
            audience = "visitor" if group.startswith(VISITOR_GROUP_PREFIX) else "operators"
            if (id(event), audience) not in answered:
                answered.add((id(event), audience))
                answer.events.append((audience, text))
    publisher = _publisher
    if publisher is not None and publisher.usable():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is publisher.loop:
            publisher.queue.put_nowait(items)
        else:
            publisher.loop.call_soon_threadsafe(publisher.queue.put_nowait, items)
        return
    # No server loop in this process (a management command, a task worker, a test).
    layer = get_channel_layer()
    async_to_sync(_send_all)(layer, items)
