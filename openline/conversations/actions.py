"""The only write path for visitors, conversations and messages.

Views, consumers, tasks and the API call these functions; each publishes its
realtime events to the channel layer after the transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils import timezone

from openline.accounts.models import Role

if TYPE_CHECKING:
    from openline.consent.models import ConsentRecord
from openline.conversations import events
from openline.conversations.models import (
    Conversation,
    ConversationStatus,
    Message,
    SenderKind,
    Visitor,
    VisitorOrigin,
)
from openline.core.pageurl import clean_page_url

MAX_TEXT = 4000
MAX_CLIENT_ID = 64


class ActionError(Exception):
    """A refused action, with a stable code for error frames and a sentence for people."""

    def __init__(self, code: str, message: str, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def _check_text(text, client_id) -> tuple[str, str]:
    if not isinstance(text, str) or not text.strip():
        raise ActionError("empty", "Write a message first.")
    if len(text) > MAX_TEXT:
        raise ActionError("too_long", f"A message can be at most {MAX_TEXT} characters.")
    client_id = client_id if isinstance(client_id, str) else ""
    if len(client_id) > MAX_CLIENT_ID:
        raise ActionError("bad_client_id", f"client_id can be at most {MAX_CLIENT_ID} characters.")
    return text, client_id


def _unread(conversation) -> int:
    return conversation.unread_count


def _publish_conversation(
    conversation, *, kind: str, extra: dict | None = None, visitor=True
) -> None:
    payload = {
        "type": kind,
        "conversation": events.conversation_payload(conversation, unread=_unread(conversation)),
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
    events.publish_after_commit(conversation=conversation, operators=payload, visitor=visitor_event)


# ----- visitors and conversations --------------------------------------------------------


def create_livechat_visitor(*, channel, language: str, user_agent: str) -> Visitor:
    """Create the profile of a live chat client (no access to Openline)."""
    visitor = Visitor(
        origin=VisitorOrigin.LIVECHAT,
        channel=channel,
        language=(language or "")[:10],
        user_agent=(user_agent or "")[:1000],
        last_seen_at=timezone.now(),
    )
    visitor.save(force_insert=True)
    return visitor


@transaction.atomic
def start_conversation(*, channel, visitor: Visitor, page_url: str = "") -> Conversation:
    """Start a new conversation of ``visitor`` on ``channel``."""
    conversation = Conversation(
        channel=channel,
        visitor=visitor,
        origin=visitor.origin,
        status=ConversationStatus.NEW,
        page_url=clean_page_url(page_url),
    )
    conversation.save(force_insert=True)
    _publish_conversation(conversation, kind="conversation.started")
    return conversation


def _store_message(
    *, conversation, sender: str, author, text: str, client_id: str
) -> tuple[Message, bool]:
    message = Message(
        conversation=conversation, sender=sender, author=author, text=text, client_id=client_id
    )
    # The caller holds the conversation's row lock and has looked for the client_id, so two
    # copies of one resent frame cannot both get here; the unique constraint stays as the
    # last line of defence.
    message.save(force_insert=True)
    conversation.last_message_at = message.created_at
    conversation.last_message_sender = sender
    conversation.last_message_preview = text[:200]
    return message, True


def _publish_message(conversation, message) -> None:
    payload = events.message_payload(message)
    events.publish_after_commit(
        conversation=conversation,
        operators={
            "type": "message",
            "message": payload,
            "conversation": events.conversation_payload(conversation, unread=_unread(conversation)),
        },
        visitor={"type": "message", "message": payload},
    )


@transaction.atomic
def receive_message(
    *, conversation: Conversation, visitor: Visitor, text: str, client_id: str = ""
) -> tuple[Message, bool]:
    """Store a client's message; a resent ``client_id`` returns the stored one (created=False)."""
    text, client_id = _check_text(text, client_id)
    return _receive(
        conversation_id=conversation.pk, visitor=visitor, text=text, client_id=client_id
    )


def _refuse_if_closed(conversation: Conversation, reason: str) -> None:
    if conversation.status == ConversationStatus.CLOSED:
        raise ActionError("conversation_closed", reason, conversation=conversation.id)


def _resent(conversation_id: int, client_id: str) -> Message | None:
    if not client_id:
        return None
    found = list(
        Message.objects.filter(conversation_id=conversation_id, client_id=client_id).order_by()[:1]
    )
    return found[0] if found else None


def _receive(
    *,
    conversation_id: int,
    visitor: Visitor,
    text: str,
    client_id: str,
    channel=None,
    check_resent: bool = True,
) -> tuple[Message, bool]:
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
    existing = _resent(conversation.pk, client_id) if check_resent else None
    if existing is not None:
        return existing, False
    _refuse_if_closed(conversation, "This conversation is closed. Start a new chat to write again.")
    message, _ = _store_message(
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
    _publish_message(conversation, message)
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
    text, client_id = _check_text(text, client_id)
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("channel", "visitor", "assignee")
        .get(pk=conversation.pk)
    )
    if not can_answer(actor, conversation):
        raise ActionError("forbidden", "You do not answer this Open Channel.")
    existing = _resent(conversation.pk, client_id)
    if existing is not None:
        return existing, False
    _refuse_if_closed(conversation, "This conversation is closed; the client can start a new one.")
    message, created = _store_message(
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
    # Answering means the operator has read what the client wrote so far.
    _mark(
        conversation=conversation,
        sender=SenderKind.VISITOR,
        up_to=message.id,
        field="read_at",
        publish=True,
    )
    _publish_message(conversation, message)
    return message, created


@transaction.atomic
def close_conversation(*, conversation: Conversation, actor, reason: str = "") -> Conversation:
    """Close a conversation; ``actor`` is the staff user, or None when the client's action closes it."""
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("channel", "visitor", "assignee")
        .get(pk=conversation.pk)
    )
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
    _publish_conversation(conversation, kind="conversation.closed")
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
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("channel", "visitor", "assignee")
        .get(pk=conversation.pk)
    )
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
    _publish_conversation(
        conversation, kind="conversation.transferred", extra={"by": str(actor)}, visitor=False
    )
    return conversation


def _mark(*, conversation, sender: str, up_to: int, field: str, publish: bool) -> int:
    now = timezone.now()
    filters = {
        "conversation": conversation,
        "sender": sender,
        "id__lte": up_to,
        f"{field}__isnull": True,
    }
    updates = {field: now}
    if field == "read_at":
        # Read implies delivered.
        Message.objects.filter(
            conversation=conversation, sender=sender, id__lte=up_to, delivered_at__isnull=True
        ).update(delivered_at=now)
    changed = Message.objects.filter(**filters).update(**updates)
    if changed and field == "read_at" and sender == SenderKind.VISITOR:
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
                conversation, unread=_unread(conversation)
            )
        events.publish_after_commit(conversation=conversation, operators=operators, visitor=event)
    return changed


@transaction.atomic
def mark_delivered(*, conversation: Conversation, reader: str, up_to: int) -> int:
    """Mark the other side's messages up to ``up_to`` as delivered to ``reader`` (visitor/operator)."""
    sender = SenderKind.OPERATOR if reader == SenderKind.VISITOR else SenderKind.VISITOR
    return _mark(
        conversation=conversation,
        sender=sender,
        up_to=int(up_to),
        field="delivered_at",
        publish=True,
    )


@transaction.atomic
def mark_read(*, conversation: Conversation, reader: str, up_to: int) -> int:
    """Mark the other side's messages up to ``up_to`` as read by ``reader`` (visitor/operator)."""
    sender = SenderKind.OPERATOR if reader == SenderKind.VISITOR else SenderKind.VISITOR
    return _mark(
        conversation=conversation, sender=sender, up_to=int(up_to), field="read_at", publish=True
    )


def signal_typing(*, conversation: Conversation, sender: str, name: str = "") -> None:
    """Tell the other side someone is typing; ephemeral, nothing is stored."""
    event = {"type": "typing", "conversation": conversation.id, "sender": sender, "name": name}
    groups = []
    if sender == SenderKind.OPERATOR:
        groups.append((events.visitor_group(conversation.visitor), event))
    else:
        groups.append((events.channel_group(conversation.channel_id), event))
    events.send_now(groups)


LAST_SEEN_PRECISION = timedelta(minutes=10)


def touch_visitor(*, visitor: Visitor) -> None:
    """Note when a client was last connected (to the nearest ten minutes, to spare writes)."""
    now = timezone.now()
    if visitor.last_seen_at and now - visitor.last_seen_at < LAST_SEEN_PRECISION:
        return
    Visitor.objects.filter(pk=visitor.pk).update(last_seen_at=now)
    visitor.last_seen_at = now


# ----- the live chat flows (consent gate) ---------------------------------------------


@dataclass(frozen=True)
class AcceptedConsent:
    """What the widget says the client accepted: the version, language and hash shown."""

    version_id: int
    language: str
    sha256: str


@dataclass(frozen=True)
class Started:
    visitor: Visitor
    conversation: Conversation
    message: Message
    record: ConsentRecord | None


@transaction.atomic
def livechat_start(
    *,
    channel,
    visitor: Visitor | None,
    accepted: AcceptedConsent | None,
    page_url: str,
    ip: str,
    user_agent: str,
    language: str,
    text: str,
    client_id: str,
) -> Started:
    """Record the accepted consent (if the gate is on), create the visitor, start a chat, store the waiting message."""
    from openline.consent.services import record_consent
    from openline.livechat.gate import consent_offer, needs_consent

    text, client_id = _check_text(text, client_id)
    page_url = clean_page_url(page_url)
    record = None
    must_consent = needs_consent(channel, visitor)
    shown = (
        consent_offer(channel, accepted.language if accepted else language)
        if must_consent
        else None
    )
    if must_consent:
        if accepted is None:
            raise ActionError("consent_required", "Accept the consent before you write.")
        if (
            shown is None
            or accepted.version_id != shown.version.id
            or accepted.sha256 != shown.sha256
        ):
            # The text changed after the page was loaded: the client must read the new one.
            raise ActionError(
                "consent_changed", "The consent text has changed. Please read it again."
            )
    if visitor is None:
        visitor = create_livechat_visitor(channel=channel, language=language, user_agent=user_agent)
    conversation = (
        Conversation.objects.filter(visitor=visitor, channel=channel)
        .exclude(status=ConversationStatus.CLOSED)
        .order_by("-id")
        .first()
    )
    if conversation is None:
        conversation = start_conversation(channel=channel, visitor=visitor, page_url=page_url)
    if must_consent:
        assert shown is not None and accepted is not None  # checked above; narrows for mypy
        record = record_consent(
            visitor=visitor,
            version=shown.version,
            language=shown.language,
            state="given",
            method="clicked_accept",
            origin="livechat",
            source_type="website",
            source_id=channel.code,
            source_label=_host_label(page_url),
            address=page_url,
            ip=ip,
            ip_missing_reason="" if ip else "The connection did not tell the client's IP address.",
            user_agent=user_agent,
            channel=channel,
            conversation=conversation,
            evidence={
                "widget": "livechat",
                "shown_sha256": accepted.sha256,
                "channel": channel.name,
            },
        )
    message, _ = receive_message(
        conversation=conversation, visitor=visitor, text=text, client_id=client_id
    )
    return Started(visitor=visitor, conversation=conversation, message=message, record=record)


def _host_label(page_url: str) -> str:
    from urllib.parse import urlsplit

    try:
        host = urlsplit(page_url).hostname or ""
    except ValueError:
        host = ""
    return host or "Website"


def visitor_send(
    *,
    channel,
    visitor: Visitor,
    conversation_id: int | None,
    text: str,
    client_id: str,
    page_url: str = "",
    resend: bool = False,
) -> tuple[Message, bool]:
    """Store a returning client's message: into their conversation, or a new one if they may start it.

    A first send skips the look-up for an earlier copy (one query less on the hot path);
    if a copy exists after all, the unique constraint refuses it and the stored one is returned.
    """
    try:
        return _visitor_send(
            channel=channel,
            visitor=visitor,
            conversation_id=conversation_id,
            text=text,
            client_id=client_id,
            page_url=page_url,
            check_resent=resend,
        )
    except IntegrityError:
        stored = list(
            Message.objects.filter(conversation__visitor=visitor, client_id=client_id or "-")[:1]
        )
        if not stored:
            raise
        return stored[0], False


@transaction.atomic
def _visitor_send(
    *,
    channel,
    visitor: Visitor,
    conversation_id: int | None,
    text: str,
    client_id: str,
    page_url: str = "",
    check_resent: bool = True,
) -> tuple[Message, bool]:
    from openline.livechat.gate import needs_consent

    text, client_id = _check_text(text, client_id)
    conversations = Conversation.objects.filter(visitor=visitor, channel=channel)
    if conversation_id:
        # The visitor filter inside _receive keeps clients to their own conversations.
        return _receive(
            conversation_id=conversation_id,
            visitor=visitor,
            text=text,
            client_id=client_id,
            channel=channel,
            check_resent=check_resent,
        )
    else:
        conversation = (
            conversations.exclude(status=ConversationStatus.CLOSED).order_by("-id").first()
        )
        if conversation is None:
            if client_id:
                resent = Message.objects.filter(
                    conversation__in=conversations, client_id=client_id
                ).first()
                if resent is not None:
                    return resent, False
            if needs_consent(channel, visitor):
                raise ActionError(
                    "consent_required", "Accept the consent before you start a new chat."
                )
            conversation = start_conversation(channel=channel, visitor=visitor, page_url=page_url)
    return _receive(
        conversation_id=conversation.pk,
        visitor=visitor,
        text=text,
        client_id=client_id,
        channel=channel,
    )


@transaction.atomic
def withdraw_livechat_consent(
    *, channel, visitor: Visitor, page_url: str, ip: str, user_agent: str
):
    """Record the client's withdrawal and close their open conversations."""
    from openline.consent import services as consent_services
    from openline.consent.models import ConsentState

    if channel.agreement_id is None:
        raise ActionError("no_consent", "This chat does not ask for consent.")
    page_url = clean_page_url(page_url)
    latest = consent_services.current_state(visitor=visitor, agreement=channel.agreement)
    if latest is None or latest.state != ConsentState.GIVEN:
        raise ActionError("not_given", "There is no consent to withdraw.")
    open_conversations = list(
        Conversation.objects.filter(visitor=visitor, channel=channel).exclude(
            status=ConversationStatus.CLOSED
        )
    )
    record = consent_services.withdraw_consent(
        visitor=visitor,
        agreement=channel.agreement,
        origin="livechat",
        source_type="website",
        source_id=channel.code,
        source_label=_host_label(page_url),
        address=page_url,
        ip=ip,
        ip_missing_reason="" if ip else "The connection did not tell the client's IP address.",
        user_agent=user_agent,
        channel=channel,
        conversation=open_conversations[0] if open_conversations else latest.conversation,
        evidence={"widget": "livechat"},
    )
    for conversation in open_conversations:
        close_conversation(
            conversation=conversation, actor=None, reason="The client withdrew consent"
        )
    return record
