"""Messages in a conversation: the client's, the operator's replies, marks and typing."""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from openline.accounts.models import Role
from openline.conversations import events, signals
from openline.conversations.actions import store_pg
from openline.conversations.actions.common import (
    ActionError,
    check_text,
    publish_message,
    refuse_if_closed,
    unread,
)
from openline.conversations.models import (
    Conversation,
    ConversationStatus,
    Message,
    SenderKind,
    Visitor,
    VisitorOrigin,
)


def store_message(
    *, conversation, sender: str, author, text: str, client_id: str
) -> tuple[Message, bool]:
    """Store a message in ``conversation`` (whose row lock the caller holds) and note it as the newest."""
    message = Message(
        conversation=conversation, sender=sender, author=author, text=text, client_id=client_id
    )
    # The caller holds the conversation's row lock and has looked for the client_id, so two
    # copies of one resent frame cannot both get here; the unique constraint stays as the
    # last line of defence.
    message.save(force_insert=True)
    signals.message_stored.send(sender=Message, message=message, conversation=conversation)
    conversation.last_message_at = message.created_at
    conversation.last_message_sender = sender
    conversation.last_message_preview = text[:200]
    return message, True


def find_resent(conversation_id: int, client_id: str) -> Message | None:
    """Return the message already stored under ``client_id`` in the conversation, if any."""
    if not client_id:
        return None
    found = list(
        Message.objects.filter(conversation_id=conversation_id, client_id=client_id).order_by()[:1]
    )
    return found[0] if found else None


@transaction.atomic
def receive_message(
    *, conversation: Conversation, visitor: Visitor, text: str, client_id: str = ""
) -> tuple[Message, bool]:
    """Store a client's message; a resent ``client_id`` returns the stored one (created=False)."""
    text, client_id = check_text(text, client_id)
    return receive_into(
        conversation_id=conversation.pk, visitor=visitor, text=text, client_id=client_id
    )


def receive_into(
    *,
    conversation_id: int,
    visitor: Visitor,
    text: str,
    client_id: str,
    channel=None,
    check_resent: bool = True,
) -> tuple[Message, bool]:
    """Store a checked client message in the visitor's own conversation; run inside a transaction."""
    if connection.vendor == "postgresql":
        # One statement checks, stores and notes the message (store_pg); when it stores
        # nothing, the ORM path below tells why (not found, closed, resent).
        stored = store_pg.store_visitor_message(
            conversation_id=conversation_id, visitor=visitor, text=text, client_id=client_id
        )
        if stored is not None:
            message, conversation = stored
            conversation.visitor = visitor
            if channel is not None and channel.pk == conversation.channel_id:
                conversation.channel = channel
            signals.message_stored.send(sender=Message, message=message, conversation=conversation)
            publish_message(conversation, message)
            return message, True
    # One locked read of the conversation, no savepoints: this is the hot path of every chat.
    found = list(
        Conversation.objects.select_for_update(of=("self",))
        .select_related("assignee")
        .filter(pk=conversation_id, visitor=visitor)
        .order_by()[:1]
    )
    if not found:
        raise ActionError("not_found", "This conversation does not exist.")
    conversation = found[0]
    conversation.visitor = visitor
    if channel is not None and channel.pk == conversation.channel_id:
        conversation.channel = channel
    existing = find_resent(conversation.pk, client_id) if check_resent else None
    if existing is not None:
        return existing, False
    refuse_if_closed(conversation, "This conversation is closed. Start a new chat to write again.")
    message, _ = store_message(
        conversation=conversation,
        sender=SenderKind.VISITOR,
        author=None,
        text=text,
        client_id=client_id,
    )
    conversation.unread_count += 1
    conversation.save(
        update_fields=[
            "last_message_at",
            "last_message_sender",
            "last_message_preview",
            "unread_count",
        ]
    )
    publish_message(conversation, message)
    return message, True


def can_answer(user, conversation) -> bool:
    """Tell whether a staff user may see and answer ``conversation``."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.role == Role.ADMINISTRATOR:
        return True
    if user.role != Role.OPERATOR:
        return False
    return conversation.channel.operators.filter(pk=user.pk).exists()


@transaction.atomic
def send_reply(
    *, conversation: Conversation, actor, text: str, client_id: str = ""
) -> tuple[Message, bool]:
    """Store an operator's reply; the first reply opens the conversation and assigns it."""
    text, client_id = check_text(text, client_id)
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("channel", "visitor", "assignee")
        .get(pk=conversation.pk)
    )
    if not can_answer(actor, conversation):
        raise ActionError("forbidden", "You do not answer this Open Channel.")
    existing = find_resent(conversation.pk, client_id)
    if existing is not None:
        return existing, False
    refuse_if_closed(conversation, "This conversation is closed; the client can start a new one.")
    message, created = store_message(
        conversation=conversation,
        sender=SenderKind.OPERATOR,
        author=actor,
        text=text,
        client_id=client_id,
    )
    fields = ["last_message_at", "last_message_sender", "last_message_preview"]
    if conversation.status == ConversationStatus.NEW:
        conversation.status = ConversationStatus.OPEN
        fields.append("status")
    if conversation.assignee_id is None:
        conversation.assignee = actor
        fields.append("assignee")
    conversation.save(update_fields=fields)
    if conversation.origin != VisitorOrigin.LIVECHAT:
        # A messenger client gets the reply through the outbox: queued in this transaction,
        # sent after commit, so a rolled-back reply is never sent. Imported on use: the outbox
        # builds on these helpers, and live chat replies never need it.
        from openline.conversations.outbox import enqueue_reply

        enqueue_reply(message=message)
    # Answering means the operator has read what the client wrote so far.
    mark(
        conversation=conversation,
        sender=SenderKind.VISITOR,
        up_to=message.id,
        field="read_at",
        publish=True,
    )
    publish_message(conversation, message)
    return message, created


def mark(*, conversation, sender: str, up_to: int, field: str, publish: bool) -> int:
    """Set ``field`` (delivered_at/read_at) on ``sender``'s messages up to ``up_to``; return how many."""
    now = timezone.now()
    filters = {
        "conversation": conversation,
        "sender": sender,
        "id__lte": up_to,
        f"{field}__isnull": True,
    }
    updates = {field: now}
    recount = field == "read_at" and sender == SenderKind.VISITOR
    if recount:
        # The conversation's row first (as a client's message takes it before adding to the
        # count): a message committing meanwhile is waited for and counted, never overwritten.
        Conversation.objects.select_for_update().filter(pk=conversation.pk).values_list(
            "pk", flat=True
        ).first()
    if field == "read_at":
        # Read implies delivered.
        Message.objects.filter(
            conversation=conversation, sender=sender, id__lte=up_to, delivered_at__isnull=True
        ).update(delivered_at=now)
    changed = Message.objects.filter(**filters).update(**updates)
    if changed and recount:
        conversation.unread_count = Message.objects.filter(
            conversation=conversation, sender=SenderKind.VISITOR, read_at__isnull=True
        ).count()
        Conversation.objects.filter(pk=conversation.pk).update(
            unread_count=conversation.unread_count
        )
    if changed and publish:
        kind = "delivered" if field == "delivered_at" else "read"
        event = {
            "type": "marks",
            "conversation": conversation.id,
            "sender": sender,
            "mark": kind,
            "up_to": up_to,
        }
        operators = dict(event)
        if sender == SenderKind.VISITOR:
            operators["conversation_state"] = events.conversation_payload(
                conversation, unread=unread(conversation)
            )
        events.publish_after_commit(conversation=conversation, operators=operators, visitor=event)
    return changed


def _other_side(reader: str) -> str:
    return SenderKind.OPERATOR if reader == SenderKind.VISITOR else SenderKind.VISITOR


@transaction.atomic
def mark_delivered(*, conversation: Conversation, reader: str, up_to: int) -> int:
    """Mark the other side's messages up to ``up_to`` as delivered to ``reader`` (visitor/operator)."""
    return mark(
        conversation=conversation,
        sender=_other_side(reader),
        up_to=int(up_to),
        field="delivered_at",
        publish=True,
    )


@transaction.atomic
def mark_read(*, conversation: Conversation, reader: str, up_to: int) -> int:
    """Mark the other side's messages up to ``up_to`` as read by ``reader`` (visitor/operator)."""
    return mark(
        conversation=conversation,
        sender=_other_side(reader),
        up_to=int(up_to),
        field="read_at",
        publish=True,
    )


def signal_typing(*, conversation: Conversation, sender: str, name: str = "") -> None:
    """Tell the other side someone is typing; ephemeral, nothing is stored."""
    event = {"type": "typing", "conversation": conversation.id, "sender": sender, "name": name}
    if sender == SenderKind.OPERATOR:
        groups = [(events.visitor_group(conversation.visitor), event)]
    else:
        groups = [(group, event) for group in events.staff_groups(conversation.channel_id)]
    events.send_now(groups)
