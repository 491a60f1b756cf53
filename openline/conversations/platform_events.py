"""What messenger platforms tell about clients and sent messages: delivery marks, blocks.

Called by the faces through ``openline.conversations.inbound``; delivery states only move
forward (``DELIVERY_RANK``): a late "delivered" never overwrites "read".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from openline.conversations import outbox
from openline.conversations.models import (
    DELIVERY_RANK,
    Conversation,
    ConversationStatus,
    DeliveryState,
    Message,
    SenderKind,
    Visitor,
)

if TYPE_CHECKING:
    from openline.conversations.inbound import ClientRef

DELIVERY_STATES = {DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.READ, "failed"}


def _as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)
    number = float(value)
    # Messenger watermarks are milliseconds since the epoch; Viber's too; accept seconds.
    return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, tz=UTC)


@transaction.atomic
def record_delivery(
    *,
    channel,
    kind: str,
    platform_message_id: str,
    state: str,
    error: str = "",
    watermark=None,
    client_external_id: str = "",
) -> int:
    """Move sent messages forward to ``state`` (never back); return how many changed."""
    if state not in DELIVERY_STATES:
        return 0
    ours = Message.objects.filter(
        conversation__channel=channel,
        conversation__origin=kind,
        sender__in=[SenderKind.OPERATOR, SenderKind.SYSTEM],
    )
    if platform_message_id:
        ours = ours.filter(
            Q(external_id=platform_message_id) | Q(outbox__platform_message_id=platform_message_id)
        )
    elif watermark is not None and client_external_id:
        ours = ours.filter(
            conversation__visitor__external_id=client_external_id,
            created_at__lte=_as_datetime(watermark),
        ).exclude(delivery_state__in=["", DeliveryState.QUEUED])
    else:
        return 0
    ids = set(ours.values_list("pk", flat=True))
    now = timezone.now()
    changed: dict[tuple[int, int], list[dict]] = {}
    for message in (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .filter(pk__in=ids)
        .order_by("pk")
    ):
        if DELIVERY_RANK[state] <= DELIVERY_RANK[message.delivery_state]:
            continue
        message.delivery_state = state
        message.delivery_error = (
            (error or "The platform could not deliver it.")[:300]
            if (state == DeliveryState.FAILED)
            else ""
        )
        if state in (DeliveryState.DELIVERED, DeliveryState.READ):
            message.delivered_at = message.delivered_at or now
        if state == DeliveryState.READ:
            message.read_at = message.read_at or now
        message.save(update_fields=["delivery_state", "delivery_error", "delivered_at", "read_at"])
        group = (message.conversation_id, message.conversation.channel_id)
        changed.setdefault(group, []).append(outbox.delivery_entry(message))
    for (conversation_id, channel_id), entries in changed.items():
        outbox.publish_delivery(conversation_id, channel_id, entries)
    return sum(len(entries) for entries in changed.values())


UNREACHABLE = {
    "telegram": "The client blocked the bot",
}


def record_client_event(*, channel, kind: str, client: ClientRef, event: str) -> None:
    """Note that a client blocked the bot / unsubscribed (or subscribed again)."""
    if event not in ("unsubscribed", "blocked", "subscribed"):
        return
    visitor = Visitor.objects.filter(
        channel=channel, origin=kind, external_id=(client.external_id or "")[:128]
    ).first()
    if visitor is None:
        return
    with transaction.atomic():
        visitor = Visitor.objects.select_for_update().get(pk=visitor.pk)
        if event == "subscribed":
            if visitor.unreachable:
                Visitor.objects.filter(pk=visitor.pk).update(unreachable="")
            return
        reason = UNREACHABLE.get(kind, "The client unsubscribed")
        if visitor.unreachable == reason:
            return
        Visitor.objects.filter(pk=visitor.pk).update(unreachable=reason)
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("channel", "visitor", "assignee")
            .filter(visitor=visitor, channel=channel)
            .exclude(status=ConversationStatus.CLOSED)
            .order_by("-id")
            .first()
        )
        if conversation is not None:
            outbox.append_message(
                conversation=conversation,
                sender=SenderKind.SYSTEM,
                text=f"{reason}. Nothing more is sent to them until they write again.",
            )
        outbox.fail_pending_for(visitor=visitor, reason=reason)
