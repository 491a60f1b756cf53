"""The outbound port of messenger conversations: a durable outbox.

A send is written as an ``OutboxItem`` in the same transaction as the message it carries and
handed to the registered dispatcher(s) after commit; a worker claims it (exactly one worker
per item), sends it through the connector and records the answer here. A reply is sent at
most once: an item whose worker died mid-send becomes "uncertain" and waits for an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from openline.conversations import events, signals
from openline.conversations.models import (
    DELIVERY_RANK,
    Conversation,
    ConversationStatus,
    DeliveryState,
    Message,
    OutboxItem,
    OutboxState,
    SenderKind,
    VisitorOrigin,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
MAX_DELAY = 600.0  # seconds: the back-off cap (a platform's retry_after may ask for more)
UNCERTAIN_NOTE = "Delivery uncertain — resend if needed"
ERROR_LENGTH = 300

_dispatchers: list[Callable[[int], None]] = []


def register_dispatcher(fn: Callable[[int], None]) -> None:
    """Register a function called with each new item's id after commit (connectors' kick)."""
    if fn not in _dispatchers:
        _dispatchers.append(fn)


def _dispatch(item_id: int) -> None:
    for fn in list(_dispatchers):
        try:
            fn(item_id)
        except Exception:  # noqa: BLE001 - the item stays pending; the periodic sweep sends it
            logger.exception("outbox dispatcher failed for item %s", item_id)


# ----- messages and their events ---------------------------------------------------------


def append_message(
    *,
    conversation: Conversation,
    sender: str,
    text: str,
    author=None,
    external_id: str = "",
    to_visitor: bool = False,
) -> Message:
    """Store a message in ``conversation`` (caller holds its row lock) and publish it to operators.

    ``to_visitor`` also shows it in the live chat widget (messenger clients get sends instead).
    """
    message = Message(
        conversation=conversation,
        sender=sender,
        author=author,
        text=text,
        external_id=external_id,
    )
    message.save(force_insert=True)
    signals.message_stored.send(sender=Message, message=message, conversation=conversation)
    fields = ["last_message_at", "last_message_sender", "last_message_preview"]
    conversation.last_message_at = message.created_at
    conversation.last_message_sender = sender
    conversation.last_message_preview = text[:200]
    if sender == SenderKind.VISITOR:
        conversation.unread_count += 1
        fields.append("unread_count")
    conversation.save(update_fields=fields)
    payload = events.message_payload(message)
    events.publish_after_commit(
        conversation=conversation,
        operators={
            "type": "message",
            "message": payload,
            "conversation": events.conversation_payload(
                conversation, unread=conversation.unread_count
            ),
        },
        visitor={"type": "message", "message": payload} if to_visitor else None,
    )
    return message


def delivery_entry(message: Message, item: OutboxItem | None = None) -> dict:
    """Serialise one message's delivery state for the ``delivery`` event."""
    return {
        "id": message.id,
        "delivery_state": message.delivery_state,
        "delivery_error": message.delivery_error,
        "outbox": item.pk if item is not None else None,
    }


def publish_delivery(conversation_id: int, channel_id: int, entries: list[dict]) -> None:
    """Tell the channel's operators, after commit, how messages of a conversation stand."""
    if not entries:
        return
    event = {"type": "delivery", "conversation": conversation_id, "messages": entries}
    groups = [(group, event) for group in events.staff_groups(channel_id)]
    transaction.on_commit(lambda: events.send_now(groups))


def _set_message_state(
    item: OutboxItem, state: str, error: str = "", *, force: bool = False
) -> Message | None:
    """Move the item's message forward to ``state`` and publish it.

    States only move forward (a late "sent" never hides "read"); ``force`` lets a message leave
    "failed" (a resend, or a platform answer after the send was thought lost).
    """
    if item.message_id is None:
        return None
    message = Message.objects.select_for_update().filter(pk=item.message_id).first()
    if message is None:
        return None
    leaving_failure = force and message.delivery_state == DeliveryState.FAILED
    # Failed -> failed only updates the error (e.g. "uncertain" becomes the platform's refusal).
    still_failing = state == message.delivery_state == DeliveryState.FAILED
    backwards = DELIVERY_RANK[state] <= DELIVERY_RANK[message.delivery_state]
    if backwards and not leaving_failure and not still_failing:
        return message
    message.delivery_state = state
    message.delivery_error = error[:ERROR_LENGTH]
    fields = ["delivery_state", "delivery_error"]
    if (
        state == DeliveryState.SENT
        and item.platform_message_id
        and not message.external_id
        # An inbound key may use the same number space (Telegram update ids): the item keeps
        # the platform id for matching receipts either way.
        and not Message.objects.filter(
            conversation_id=message.conversation_id, external_id=item.platform_message_id[:128]
        ).exists()
    ):
        message.external_id = item.platform_message_id[:128]
        fields.append("external_id")
    message.save(update_fields=fields)
    channel_id = Conversation.objects.filter(pk=item.conversation_id).values_list(
        "channel_id", flat=True
    )[0]
    publish_delivery(item.conversation_id, channel_id, [delivery_entry(message, item)])
    return message


# ----- writing items ---------------------------------------------------------------------


def _buttons(buttons: Iterable) -> list[dict]:
    out = []
    for button in buttons:
        if isinstance(button, dict):
            out.append({"id": str(button["id"]), "title": str(button["title"])})
        else:
            out.append({"id": str(button.id), "title": str(button.title)})
    return out


@transaction.atomic
def enqueue(
    *, conversation, text: str, message=None, buttons=(), final: bool = False
) -> OutboxItem:
    """Queue ``text`` (and native buttons) for the conversation's messenger client.

    Without ``message`` a system message is stored for operators to see what the client got.
    ``final`` marks the last word to a client whose data is being deleted (the answer to
    "I decline"): it still goes out after the deletion, then its copy is forgotten.
    """
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("channel", "visitor", "assignee")
        .get(pk=conversation.pk)
    )
    if message is None:
        message = append_message(conversation=conversation, sender=SenderKind.SYSTEM, text=text)
    visitor = conversation.visitor
    now = timezone.now()
    item = OutboxItem(
        message=message,
        conversation=conversation,
        kind=conversation.origin,
        recipient=visitor.external_id,
        payload={"text": text, "buttons": _buttons(buttons), **({"final": True} if final else {})},
        next_attempt_at=now,
    )
    unreachable = visitor.unreachable or (
        "" if visitor.external_id else "The client's messenger identity was deleted."
    )
    if unreachable:
        # No send is attempted to a client who blocked the bot until they write again.
        item.state = OutboxState.FAILED
        item.permanent = True
        item.last_error = unreachable[:ERROR_LENGTH]
    item.save(force_insert=True)
    if unreachable:
        _set_message_state(item, DeliveryState.FAILED, unreachable, force=True)
    else:
        _set_message_state(item, DeliveryState.QUEUED, force=True)
        item_id = item.pk
        transaction.on_commit(lambda: _dispatch(item_id))
    return item


def enqueue_reply(*, message) -> OutboxItem | None:
    """Queue an operator's reply for a messenger conversation (live chat needs no outbox)."""
    conversation = message.conversation
    if conversation.origin == VisitorOrigin.LIVECHAT:
        return None
    return enqueue(conversation=conversation, text=message.text, message=message)


@transaction.atomic
def resend(*, actor, item) -> OutboxItem:
    """Queue a failed or uncertain send again (an operator's decision): a new item."""
    from openline.conversations.actions import ActionError, can_answer

    item = OutboxItem.objects.select_related("conversation__channel").get(pk=item.pk)
    if not can_answer(actor, item.conversation):
        raise ActionError("forbidden", "You do not answer this Open Channel.")
    if item.state not in (OutboxState.FAILED, OutboxState.UNCERTAIN):
        raise ActionError("not_failed", "Only a message that was not delivered can be resent.")
    if item.message_id is None:
        raise ActionError("gone", "This message was deleted.")
    if item.conversation.status == ConversationStatus.CLOSED:
        raise ActionError("conversation_closed", "This conversation is closed.")
    if OutboxItem.objects.filter(
        message_id=item.message_id,
        pk__gt=item.pk,
        state__in=[OutboxState.PENDING, OutboxState.SENDING, OutboxState.SENT],
    ).exists():
        raise ActionError("already_resent", "This message has been queued again already.")
    return enqueue(
        conversation=item.conversation,
        text=item.payload.get("text", ""),
        message=item.message,
        buttons=item.payload.get("buttons", ()),
    )


# ----- the worker's side -----------------------------------------------------------------


def due_items(*, limit: int = 100) -> list[int]:
    """List the ids of pending items whose time has come, oldest first."""
    return list(
        OutboxItem.objects.filter(state=OutboxState.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[:limit]
    )


def claim(*, item_id: int) -> OutboxItem | None:
    """Take a pending, due item for sending; None when another worker has it or it is not due.

    One conditional UPDATE: of two workers, exactly one changes the row. Call it outside a
    transaction so the claim is committed before the platform is called.
    """
    now = timezone.now()
    claimed = OutboxItem.objects.filter(
        pk=item_id, state=OutboxState.PENDING, next_attempt_at__lte=now
    ).update(state=OutboxState.SENDING, attempts=F("attempts") + 1, claimed_at=now)
    if not claimed:
        return None
    return OutboxItem.objects.select_related("conversation").get(pk=item_id)


@transaction.atomic
def record_sent(*, item, platform_message_id: str) -> None:
    """Record that the platform accepted the send and returned ``platform_message_id``."""
    updated = OutboxItem.objects.filter(
        pk=item.pk, state__in=[OutboxState.SENDING, OutboxState.UNCERTAIN]
    ).update(
        state=OutboxState.SENT,
        sent_at=timezone.now(),
        platform_message_id=(platform_message_id or "")[:128],
        last_error="",
    )
    if not updated:
        return
    item.refresh_from_db()
    # The platform answered after all: an "uncertain" mark is replaced by the truth.
    _set_message_state(item, DeliveryState.SENT, force=True)
    _forget_if_final(item)


def backoff(attempts: int, retry_after: float | None) -> float:
    """Seconds to wait before attempt ``attempts + 1``: 2^attempts capped, or the platform's wish."""
    delay = min(float(2 ** max(attempts, 0)), MAX_DELAY)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, float(retry_after))
    return delay


@transaction.atomic
def record_failure(
    *, item, error: str, permanent: bool, retry_after: float | None
) -> datetime | None:
    """Record a failed send; return when it is retried, or None when it was given up."""
    item = OutboxItem.objects.select_for_update().get(pk=item.pk)
    if item.state not in (OutboxState.SENDING, OutboxState.PENDING):
        return None
    error = (error or "The platform refused the message.")[:ERROR_LENGTH]
    item.last_error = error
    if permanent or item.attempts >= MAX_ATTEMPTS:
        item.state = OutboxState.FAILED
        item.permanent = permanent
        item.save(update_fields=["state", "permanent", "last_error"])
        _set_message_state(item, DeliveryState.FAILED, error)
        _forget_if_final(item)
        return None
    item.state = OutboxState.PENDING
    item.next_attempt_at = timezone.now() + timedelta(seconds=backoff(item.attempts, retry_after))
    item.save(update_fields=["state", "next_attempt_at", "last_error"])
    return item.next_attempt_at


def reap_stale(*, older_than_seconds: float = 120) -> int:
    """Mark sends stuck in "sending" (the worker died) as uncertain; never resend them."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = list(
        OutboxItem.objects.filter(state=OutboxState.SENDING, claimed_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    reaped = 0
    for pk in stale:
        with transaction.atomic():
            # Conditional: a worker that answers at this moment keeps its "sent".
            if not OutboxItem.objects.filter(pk=pk, state=OutboxState.SENDING).update(
                state=OutboxState.UNCERTAIN, last_error=UNCERTAIN_NOTE
            ):
                continue
            reaped += 1
            _set_message_state(
                OutboxItem.objects.get(pk=pk), DeliveryState.FAILED, UNCERTAIN_NOTE, force=True
            )
    return reaped


def _forget_if_final(item: OutboxItem) -> None:
    if item.payload.get("final"):
        OutboxItem.objects.filter(pk=item.pk).update(recipient="", payload={})


def forget_client(*, visitor) -> int:
    """Blank the recipient and text of the client's finished sends (their data is erased).

    A pending ``final`` notice keeps them until it is sent (then it forgets them itself).
    """
    return (
        OutboxItem.objects.filter(conversation__visitor=visitor)
        .exclude(state__in=[OutboxState.PENDING, OutboxState.SENDING], payload__final=True)
        .update(recipient="", payload={})
    )


@transaction.atomic
def fail_pending_for(*, visitor, reason: str) -> int:
    """Give up every unsent item to ``visitor`` permanently (they blocked the bot, say).

    A ``final`` notice (the answer to "I decline") is kept: it is the client's last message.
    """
    items = [
        item
        for item in OutboxItem.objects.select_for_update().filter(
            conversation__visitor=visitor, state=OutboxState.PENDING
        )
        if not item.payload.get("final")
    ]
    for item in items:
        item.state = OutboxState.FAILED
        item.permanent = True
        item.last_error = reason[:ERROR_LENGTH]
        item.save(update_fields=["state", "permanent", "last_error"])
        _set_message_state(item, DeliveryState.FAILED, reason)
    return len(items)
