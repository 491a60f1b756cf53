"""The live chat flows: the consent gate before the first message, returning clients, withdrawal.

They are the live chat face of the channel-neutral conversation actions; the consent policy
(what to show, whether consent is still needed) comes from ``openline.openchannels.policy``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone

from openline.consent import services as consent_services
from openline.consent.models import AgreementVersion, ConsentRecord, ConsentState
from openline.consent.services import ShownText, text_for
from openline.conversations.actions import (
    ActionError,
    close_conversation,
    create_visitor,
    start_conversation,
)
from openline.conversations.actions.common import check_text
from openline.conversations.actions.messages import receive_into
from openline.conversations.models import (
    Conversation,
    ConversationStatus,
    Message,
    Visitor,
    VisitorOrigin,
)
from openline.core.pageurl import clean_page_url
from openline.livechat.models import KEY_LIFETIME, StartKey
from openline.openchannels.models import Connector, ConnectorKind
from openline.openchannels.policy import needs_consent
from openline.openchannels.services import consent_settings

NO_IP_REASON = "The connection did not tell the client's IP address."


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


def create_livechat_visitor(*, channel, language: str, user_agent: str) -> Visitor:
    """Create the profile of a live chat client (no access to Openline)."""
    return create_visitor(
        channel=channel, origin=VisitorOrigin.LIVECHAT, language=language, user_agent=user_agent
    )


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
    idempotency: IdempotencyKey | None = None,
) -> Started:
    """Record the accepted consent (if the gate is on), create the visitor, start a chat, store the waiting message.

    With ``idempotency`` the key is stored in the same transaction, with what the start created;
    a concurrent start with the same key then fails on its unique constraint (IntegrityError)
    and rolls back whole, and the caller answers it with ``replay_start``.

    A new client costs four INSERTs and one UPDATE in one transaction: no look-ups that cannot
    find anything (a new visitor has no conversation, a new conversation no resent message),
    the shown text from ``current_offer`` (the version id read fresh, its immutable text cached).
    """
    text, client_id = check_text(text, client_id)
    page_url = clean_page_url(page_url)
    record = None
    must_consent = needs_consent(channel, visitor)
    shown = None
    if must_consent:
        shown = current_offer(channel, accepted.language if accepted else language)
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
    conversation = None
    if visitor is None:
        visitor = create_livechat_visitor(channel=channel, language=language, user_agent=user_agent)
    else:
        conversation = (
            Conversation.objects.filter(visitor=visitor, channel=channel)
            .exclude(status=ConversationStatus.CLOSED)
            .order_by("-id")
            .first()
        )
    started = conversation is None
    if conversation is None:
        conversation = start_conversation(channel=channel, visitor=visitor, page_url=page_url)
    if must_consent:
        assert shown is not None and accepted is not None  # checked above; narrows for mypy
        record = consent_services.record_consent(
            **gate_record_fields(
                channel=channel,
                shown=shown,
                accepted=accepted,
                page_url=page_url,
                ip=ip,
                user_agent=user_agent,
            ),
            visitor=visitor,
            conversation=conversation,
        )
    # The channel-neutral write path of a client's message (receive_message minus its savepoint).
    message, _ = receive_into(
        conversation_id=conversation.pk,
        visitor=visitor,
        text=text,
        client_id=client_id,
        channel=channel,
        check_resent=not started,
    )
    if idempotency is not None:
        # A key past its lifetime that the hourly purge has not removed yet is unknown
        # (replay_start ignores it): this start takes its place.
        StartKey.objects.filter(
            channel=channel, key=idempotency.key, created_at__lt=timezone.now() - KEY_LIFETIME
        ).delete()
        StartKey.objects.create(
            channel=channel,
            key=idempotency.key,
            body_sha256=idempotency.body_sha256,
            visitor_public_id=visitor.public_id,
            conversation_pk=conversation.pk,
            message_pk=message.pk,
            record_uuid=record.uuid if record is not None else None,
            created_at=timezone.now(),
        )
    return Started(visitor=visitor, conversation=conversation, message=message, record=record)


def gate_record_fields(
    *, channel, shown: ShownText, accepted: AcceptedConsent, page_url: str, ip: str, user_agent: str
) -> dict:
    """The consent record of an accepted live chat gate, as ``record_consent``'s arguments.

    Everything but the visitor and the conversation; ``page_url`` is already cleaned. The
    one-statement capture (``capture_pg``) builds its record from the same fields.
    """
    return {
        "version": shown.version,
        "language": shown.language,
        "shown": shown,
        "state": "given",
        "method": "clicked_accept",
        "origin": "livechat",
        "source_type": "website",
        "source_id": channel.code,
        "source_label": _host_label(page_url),
        "address": page_url,
        "ip": ip,
        "ip_missing_reason": "" if ip else NO_IP_REASON,
        "user_agent": user_agent,
        "channel": channel,
        "channel_settings": consent_settings(channel),
        "evidence": {
            "widget": "livechat",
            "shown_sha256": accepted.sha256,
            "channel": channel.name,
        },
    }


@dataclass(frozen=True)
class IdempotencyKey:
    """A start's Idempotency-Key header and the SHA-256 of its body."""

    key: str
    body_sha256: str


class IdempotencyMismatch(Exception):
    """The key was used for a start with another body."""


def replay_start(*, channel, idempotency: IdempotencyKey) -> Started | None:
    """Return what the start with this key created (no new row, no event), or None if unknown.

    Raises IdempotencyMismatch when the key came with another body, and ActionError
    ``session_gone`` when the client's data was deleted since.
    """
    since = timezone.now() - KEY_LIFETIME
    found = StartKey.objects.filter(
        channel=channel, key=idempotency.key, created_at__gte=since
    ).first()
    if found is None:
        return None
    if found.body_sha256 != idempotency.body_sha256:
        raise IdempotencyMismatch(idempotency.key)
    visitor = Visitor.objects.filter(
        public_id=found.visitor_public_id, channel=channel, erased_at__isnull=True
    ).first()
    conversation = Conversation.objects.filter(pk=found.conversation_pk, visitor=visitor).first()
    message = Message.objects.filter(pk=found.message_pk, conversation=conversation).first()
    if visitor is None or conversation is None or message is None:
        raise ActionError("session_gone", "This chat no longer exists; start a new one.")
    record = None
    if found.record_uuid is not None:
        record = ConsentRecord.objects.filter(uuid=found.record_uuid).first()
    return Started(visitor=visitor, conversation=conversation, message=message, record=record)


def purge_start_keys() -> int:
    """Delete start keys past their lifetime (the hourly retention job calls this)."""
    deleted, _ = StartKey.objects.filter(created_at__lt=timezone.now() - KEY_LIFETIME).delete()
    return deleted


# Versions and their texts never change, so what a version shows in a language is kept a
# moment; which version is current is always read fresh (see current_offer). The key holds the
# version's random public code too: an id reused after a rolled-back insert is another version.
OFFER_TTL = 5.0
_offers: dict[tuple[int, str, str], tuple[float, ShownText]] = {}
_offers_lock = threading.Lock()


def current_offer(channel, language: str | None) -> ShownText | None:
    """Return the consent text this channel shows now (policy.consent_offer, with fewer queries).

    Uses ``channel.current_version`` = (id, public code) when the caller annotated it (one query
    for the channel and its current version, see views.start_channel), else reads it. The text
    of that exact version comes from a short per-process cache: a newly published version is
    another row, so it is never missed.
    """
    if not channel.consent_enabled or channel.agreement_id is None:
        return None
    current = (
        getattr(channel, "current_version_id", _UNREAD),
        getattr(channel, "current_version_code", None),
    )
    if current[0] is _UNREAD:
        current = (
            AgreementVersion.objects.filter(agreement_id=channel.agreement_id)
            .order_by("-number")
            .values_list("id", "public_code")
            .first()
        ) or (None, None)
    version_id, code = current
    if not isinstance(version_id, int) or not isinstance(code, str):
        return None  # the agreement has no version yet
    key = (version_id, code, language or "")
    now = time.monotonic()
    cached = _offers.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    version = AgreementVersion.objects.select_related("agreement").get(pk=version_id)
    shown = text_for(version, language)
    with _offers_lock:
        if len(_offers) > 1000:
            _offers.clear()
        _offers[key] = (now + OFFER_TTL, shown)
    return shown


_UNREAD = object()


@dataclass(frozen=True)
class ConsentStatus:
    """What the widget needs to know about a client's consent on a channel."""

    required: bool  # the gate must be shown before a new chat
    in_force: bool  # the latest record on the channel's agreement is "given" (any version)
    changed: bool  # the client agreed to an earlier version and must read the new one


def consent_status(channel, visitor: Visitor | None) -> ConsentStatus:
    """Tell whether ``visitor`` must consent, has a consent in force, and agreed to an older text."""
    if visitor is None or channel.agreement_id is None:
        return ConsentStatus(
            required=needs_consent(channel, visitor), in_force=False, changed=False
        )
    latest = consent_services.current_state(visitor=visitor, agreement=channel.agreement)
    in_force = latest is not None and latest.state == ConsentState.GIVEN
    version = channel.agreement.current_version if channel.consent_enabled else None
    # The same rule as policy.needs_consent, without reading the latest record twice.
    required = version is not None and not (
        in_force and latest is not None and latest.version_id == version.id
    )
    changed = False
    if required:
        changed = (
            ConsentRecord.objects.filter(
                visitor=visitor, agreement_id=channel.agreement_id, state=ConsentState.GIVEN
            )
            .exclude(version=version)
            .exists()
        )
    return ConsentStatus(required=required, in_force=in_force, changed=changed)


def _host_label(page_url: str) -> str:
    try:
        host = urlsplit(page_url).hostname or ""
    except ValueError:
        host = ""
    return host or "Website"


def _livechat_open(channel) -> bool:
    """Whether the channel is active with its live chat connector on (read now, not cached)."""
    return Connector.objects.filter(
        channel_id=channel.pk,
        channel__is_active=True,
        kind=ConnectorKind.LIVECHAT,
        is_enabled=True,
    ).exists()


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
    text, client_id = check_text(text, client_id)
    if Visitor.objects.filter(pk=visitor.pk, erased_at__isnull=False).exists():
        # The client's data was deleted while this socket was open: nothing more is stored.
        raise ActionError("not_found", "This chat is no longer available.")
    if not _livechat_open(channel):
        # Deactivated, or its live chat switched off, while this socket was open.
        raise ActionError("not_found", "This chat is no longer available.")
    conversations = Conversation.objects.filter(visitor=visitor, channel=channel)
    if conversation_id:
        # The visitor filter inside receive_into keeps clients to their own conversations.
        return receive_into(
            conversation_id=conversation_id,
            visitor=visitor,
            text=text,
            client_id=client_id,
            channel=channel,
            check_resent=check_resent,
        )
    conversation = conversations.exclude(status=ConversationStatus.CLOSED).order_by("-id").first()
    if conversation is None:
        if client_id:
            resent = Message.objects.filter(
                conversation__in=conversations, client_id=client_id
            ).first()
            if resent is not None:
                return resent, False
        if needs_consent(channel, visitor):
            raise ActionError("consent_required", "Accept the consent before you start a new chat.")
        conversation = start_conversation(channel=channel, visitor=visitor, page_url=page_url)
    return receive_into(
        conversation_id=conversation.pk,
        visitor=visitor,
        text=text,
        client_id=client_id,
        channel=channel,
    )


@transaction.atomic
def withdraw_livechat_consent(
    *, channel, visitor: Visitor, page_url: str, ip: str, user_agent: str
) -> ConsentRecord:
    """Record the client's withdrawal and close their open conversations."""
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
        ip_missing_reason="" if ip else NO_IP_REASON,
        user_agent=user_agent,
        channel=channel,
        channel_settings=consent_settings(channel),
        conversation=open_conversations[0] if open_conversations else latest.conversation,
        evidence={"widget": "livechat"},
    )
    for conversation in open_conversations:
        close_conversation(
            conversation=conversation, actor=None, reason="The client withdrew consent"
        )
    return record
