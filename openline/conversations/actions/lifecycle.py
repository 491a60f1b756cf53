"""Visitors and the life of a conversation: start, close, transfer."""

from __future__ import annotations

from datetime import timedelta

from django.db import models, transaction
from django.utils import timezone

from openline.accounts.models import Role
from openline.conversations import signals
from openline.conversations.actions.common import ActionError, publish_conversation
from openline.conversations.actions.messages import can_answer
from openline.conversations.models import Conversation, ConversationStatus, Visitor
from openline.core.pageurl import clean_page_url

LAST_SEEN_PRECISION = timedelta(minutes=10)


def new_visitor(*, channel, origin: str, language: str = "", user_agent: str = "") -> Visitor:
    """The unsaved profile ``create_visitor`` writes (the one-statement chat start writes it too)."""
    return Visitor(
        origin=origin,
        channel=channel,
        language=(language or "")[:10],
        user_agent=(user_agent or "")[:1000],
        last_seen_at=timezone.now(),
    )


def create_visitor(*, channel, origin: str, language: str = "", user_agent: str = "") -> Visitor:
    """Create the profile of a client who reached ``channel`` through ``origin`` (no access)."""
    visitor = new_visitor(channel=channel, origin=origin, language=language, user_agent=user_agent)
    visitor.save(force_insert=True)
    return visitor


def new_conversation(*, channel, visitor: Visitor, page_url: str = "") -> Conversation:
    """The unsaved conversation ``start_conversation`` writes."""
    return Conversation(
        channel=channel,
        visitor=visitor,
        origin=visitor.origin,
        status=ConversationStatus.NEW,
        page_url=clean_page_url(page_url),
    )


# No savepoint: nothing here is caught and retried inside a caller's transaction, and a capture
# saves two round trips.
@transaction.atomic(savepoint=False)
def start_conversation(*, channel, visitor: Visitor, page_url: str = "") -> Conversation:
    """Start a new conversation of ``visitor`` on ``channel``."""
    conversation = new_conversation(channel=channel, visitor=visitor, page_url=page_url)
    conversation.save(force_insert=True)
    publish_conversation(conversation, kind="conversation.started")
    signals.conversation_started.send(sender=Conversation, conversation=conversation)
    return conversation


def _locked(conversation: Conversation) -> Conversation:
    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("channel", "visitor", "assignee")
        .get(pk=conversation.pk)
    )


@transaction.atomic
def close_conversation(*, conversation: Conversation, actor, reason: str = "") -> Conversation:
    """Close a conversation; ``actor`` is the staff user, or None when the client's action closes it."""
    conversation = _locked(conversation)
    if actor is not None and not can_answer(actor, conversation):
        raise ActionError("forbidden", "You do not answer this Open Channel.")
    if conversation.status == ConversationStatus.CLOSED:
        return conversation
    conversation.status = ConversationStatus.CLOSED
    conversation.closed_at = timezone.now()
    conversation.closed_reason = (
        reason or ("Closed by the operator" if actor else "Closed by the client")
    )[:200]
    conversation.save(update_fields=["status", "closed_at", "closed_reason"])
    publish_conversation(conversation, kind="conversation.closed")
    signals.conversation_closed.send(sender=Conversation, conversation=conversation)
    return conversation


def transfer_targets(conversation) -> list:
    """List the staff users a conversation can be transferred to."""
    operators = conversation.channel.operators.filter(
        is_active=True, role__in=[Role.OPERATOR, Role.ADMINISTRATOR]
    ).order_by("username")
    if conversation.assignee_id:
        operators = operators.exclude(pk=conversation.assignee_id)
    return list(operators)


@transaction.atomic
def transfer_conversation(*, conversation: Conversation, actor, to_user) -> Conversation:
    """Hand a conversation to another operator of its Open Channel."""
    conversation = _locked(conversation)
    if not can_answer(actor, conversation):
        raise ActionError("forbidden", "You do not answer this Open Channel.")
    if conversation.status == ConversationStatus.CLOSED:
        raise ActionError("conversation_closed", "A closed conversation cannot be transferred.")
    if (
        to_user is None
        or not conversation.channel.operators.filter(pk=to_user.pk, is_active=True).exists()
    ):
        raise ActionError("bad_target", "Choose an operator of this Open Channel.")
    conversation.assignee = to_user
    if conversation.status == ConversationStatus.NEW:
        conversation.status = ConversationStatus.OPEN
    conversation.save(update_fields=["assignee", "status"])
    publish_conversation(
        conversation, kind="conversation.transferred", extra={"by": str(actor)}, visitor=False
    )
    return conversation


def touch_visitor(*, visitor: Visitor) -> None:
    """Note when a client was last connected (to the nearest ten minutes, to spare writes)."""
    now = timezone.now()
    if visitor.last_seen_at and now - visitor.last_seen_at < LAST_SEEN_PRECISION:
        return
    Visitor.objects.filter(pk=visitor.pk).update(last_seen_at=now)
    visitor.last_seen_at = now


def touch_visitors(*, visitor_ids: list[int]) -> int:
    """Note that these clients connected just now: one statement for many (reconnect storms)."""
    now = timezone.now()
    stale = models.Q(last_seen_at__isnull=True) | models.Q(
        last_seen_at__lt=now - LAST_SEEN_PRECISION
    )
    return Visitor.objects.filter(stale, pk__in=visitor_ids).update(last_seen_at=now)
