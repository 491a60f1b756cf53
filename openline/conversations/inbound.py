"""Channel-neutral messenger conversations: clients, inbound messages, marks, consent.

Every messenger face (``connectors/<platform>/``) turns a platform payload into typed values
and calls these actions; nothing here sees a payload. Consent by continued conversation:
the client's first message gets the channel's warning with a link to the exact version;
their next message confirms it (or, in buttons mode, the "I accept" button does).

An erased client has a blank ``external_id`` (``conversations.erasure``), so when they write
again they are a new visitor: a fresh profile, a fresh warning, their old consent records stay
with the pseudonymous old profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from openline.consent import services as consent_services
from openline.consent.models import AgreementVersion, ConsentMethod, ConsentRecord, ConsentState
from openline.conversations import outbox
from openline.conversations.actions import (
    ActionError,
    can_answer,
    close_conversation,
    start_conversation,
    touch_visitor,
)
from openline.conversations.models import (
    Conversation,
    ConversationStatus,
    Message,
    SenderKind,
    Visitor,
    VisitorOrigin,
)
from openline.conversations.notices import notice

# Platform events (delivery marks, blocked/unsubscribed) live next door; exported here too,
# so a face finds every channel-neutral messenger action in this module.
from openline.conversations.platform_events import record_client_event, record_delivery
from openline.openchannels import policy
from openline.openchannels.models import MessengerConsentMode, OpenChannel
from openline.openchannels.services import consent_settings

ACCEPT = "consent:accept"
DECLINE = "consent:decline"
NO_IP_REASON = "Not provided by the platform: messengers do not tell the client's IP address."
OPERATOR_NO_IP_REASON = "Recorded by an operator on the client's request: no client IP address."
WITHDRAWN_REASON = "The client withdrew consent"
LOCAL_BASE = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class ClientRef:
    """The client's identity as the face knows it."""

    external_id: str
    name: str = ""
    language: str = ""
    phone: str = ""
    username: str = ""


@dataclass(frozen=True)
class SourceRef:
    """What a consent record names as its Source (the client's CRM item)."""

    type: str
    id: str
    label: str


@dataclass(frozen=True)
class InboundResult:
    visitor: Visitor
    conversation: Conversation | None
    message: Message | None
    duplicate: bool
    consent: str  # "" | "warned" | "given" | "withdrawn" | "declined"
    declined: bool


# ----- links -----------------------------------------------------------------------------


def _base_url() -> str:
    return (getattr(settings.CONFIG, "public_url", "") or LOCAL_BASE).rstrip("/")


def version_link(version) -> str:
    """Return the absolute URL of the public page of exactly this consent version."""
    return _base_url() + reverse("consent_public:version", kwargs={"code": version.public_code})


def conversation_link(conversation) -> str:
    """Return the absolute URL of the conversation in the console (a record's Address)."""
    return _base_url() + reverse(
        "conversations:conversation", kwargs={"conversation_id": conversation.pk}
    )


# ----- clients ---------------------------------------------------------------------------


def _profile(client: ClientRef) -> dict[str, str]:
    name = (client.name or "").strip() or (
        f"@{client.username.strip()}" if (client.username or "").strip() else ""
    )
    return {
        "name": name[:200],
        "language": (client.language or "").strip()[:10],
        "phone": (client.phone or "").strip()[:40],
    }


def get_or_create_client(*, channel, kind: str, client: ClientRef) -> Visitor:
    """Find or create the visitor of a messenger user, once even under concurrent calls."""
    external_id = (client.external_id or "").strip()[:128]
    if not external_id:
        raise ValueError("A messenger client needs an external id.")
    lookup = {"channel": channel, "origin": VisitorOrigin(kind), "external_id": external_id}
    profile = _profile(client)
    visitor = Visitor.objects.filter(**lookup).first()
    if visitor is None:
        try:
            with transaction.atomic():
                visitor = Visitor(**lookup, **profile, last_seen_at=timezone.now())
                visitor.save(force_insert=True)
                return visitor
        except IntegrityError:
            # Another process created them between our look-up and insert (visitor_external_once).
            visitor = Visitor.objects.get(**lookup)
    # The platform tells the newest profile: keep it, but never blank what we know.
    changed = {k: v for k, v in profile.items() if v and getattr(visitor, k) != v}
    if changed:
        Visitor.objects.filter(pk=visitor.pk).update(**changed)
        for key, value in changed.items():
            setattr(visitor, key, value)
    return visitor


# ----- receiving -------------------------------------------------------------------------


def _open_conversation(channel, visitor: Visitor) -> tuple[Conversation, bool]:
    def locked():
        return (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("channel", "visitor", "assignee")
            .filter(visitor=visitor, channel=channel)
            .exclude(status=ConversationStatus.CLOSED)
            .order_by("-id")
            .first()
        )

    conversation = locked()
    if conversation is not None:
        return conversation, False
    start_conversation(channel=channel, visitor=visitor)
    conversation = locked()
    assert conversation is not None  # just started, under the visitor's row lock
    return conversation, True


def _current_version(channel):
    if not channel.consent_enabled or channel.agreement_id is None:
        return None
    return channel.agreement.current_version


def _settings(channel) -> dict:
    # The registry stores the channel's consent workflow in force with each record (EDPB 05/2020).
    return consent_settings(channel)


@transaction.atomic
def receive_inbound(
    *,
    channel,
    kind: str,
    visitor: Visitor,
    key: str,
    text: str,
    button: str = "",
    source: SourceRef,
) -> InboundResult:
    """Store a client's message (once per ``key``), publish it, and apply the consent policy."""
    # The visitor's row lock serialises everything about one client: duplicates, the open
    # conversation, the warning and the consent record are decided one message at a time.
    visitor = Visitor.objects.select_for_update().get(pk=visitor.pk)
    if visitor.erased_at is not None:
        raise ActionError("erased", "This client's data was deleted.")
    key = (key or "")[:128]
    if key:
        stored = (
            Message.objects.filter(
                conversation__visitor=visitor, sender=SenderKind.VISITOR, external_id=key
            )
            .select_related("conversation")
            .first()
        )
        if stored is not None:
            return InboundResult(visitor, stored.conversation, stored, True, "", False)
    if visitor.unreachable:
        # They wrote again: whatever blocked sending is over.
        visitor.unreachable = ""
        Visitor.objects.filter(pk=visitor.pk).update(unreachable="")
    touch_visitor(visitor=visitor)
    text = (text or "").strip() or _button_title(button, visitor.language) or "(empty message)"
    conversation, started = _open_conversation(channel, visitor)
    message = outbox.append_message(
        conversation=conversation, sender=SenderKind.VISITOR, text=text, external_id=key
    )
    consent, declined = "", False
    version = _current_version(channel)
    if version is not None:
        step = _Step(channel, kind, visitor, conversation, message, version, source)
        if not button and policy.is_withdraw_keyword(channel, text, visitor.language):
            consent = step.withdraw_by_keyword()
        else:
            consent, declined = step.consent(button=button, started=started)
    return InboundResult(visitor, conversation, message, False, consent, declined)


def _button_title(button: str, language: str) -> str:
    accept, decline = policy.button_labels(language)
    return {ACCEPT: accept, DECLINE: decline}.get(button, "")


@dataclass
class _Step:
    """The consent policy applied to one stored inbound message."""

    channel: OpenChannel
    kind: str
    visitor: Visitor
    conversation: Conversation
    message: Message
    version: AgreementVersion
    source: SourceRef

    def _say(self, text: str, buttons=()) -> outbox.OutboxItem:
        return outbox.enqueue(conversation=self.conversation, text=text, buttons=buttons)

    def _set_visitor(self, **fields) -> None:
        Visitor.objects.filter(pk=self.visitor.pk).update(**fields)
        for name, value in fields.items():
            setattr(self.visitor, name, value)

    def consent(self, *, button: str, started: bool) -> tuple[str, bool]:
        visitor, version = self.visitor, self.version
        if not policy.needs_consent(self.channel, visitor):
            return "", False
        mode = policy.messenger_mode(self.channel)
        warned_current = visitor.warning_version_id == version.id
        if mode == MessengerConsentMode.BUTTONS:
            if button == DECLINE and visitor.warning_version_id is not None:
                # No refusal is stored; the caller deletes what was stored of the client.
                outbox.enqueue(
                    conversation=self.conversation,
                    text=notice("declined", visitor.language),
                    final=True,
                )
                return "declined", True
            if button == ACCEPT and warned_current:
                self._record(ConsentMethod.CLICKED_ACCEPT, mode)
                self._say(notice("thanks", visitor.language))
                return "given", False
            if warned_current:
                return "", False  # plain text while awaiting the click confirms nothing
        elif warned_current:
            self._record(ConsentMethod.CONTINUED_CHATTING, mode)
            return "given", False
        # A newer version is announced at the start of the next conversation, not in the
        # middle of one the client already consented to; a client still unconfirmed (or never
        # warned) gets the current version's warning straight away.
        if (
            started
            or visitor.warning_version_id is None
            or visitor.awaiting_consent_since is not None
        ):
            self._warn(mode)
            return "warned", False
        return "", False

    def _warn(self, mode: str) -> None:
        visitor = self.visitor
        text = policy.warning_text(self.channel, visitor.language, version_link(self.version))
        buttons: list[dict] = []
        if mode == MessengerConsentMode.BUTTONS:
            accept, decline = policy.button_labels(visitor.language)
            buttons = [{"id": ACCEPT, "title": accept}, {"id": DECLINE, "title": decline}]
        self._say(text, buttons)
        self._set_visitor(
            warning_version_id=self.version.id,
            awaiting_consent_since=visitor.awaiting_consent_since or timezone.now(),
        )

    def _warning_message(self) -> Message | None:
        link = version_link(self.version)
        return (
            Message.objects.filter(
                conversation__visitor=self.visitor,
                sender=SenderKind.SYSTEM,
                text__contains=link,
            )
            .order_by("-id")
            .first()
        )

    def _record(self, method: str, mode: str) -> ConsentRecord:
        warning = self._warning_message()
        sent_at = None
        if warning is not None:
            sent = warning.outbox.exclude(sent_at=None).order_by("id").first()
            when = sent.sent_at if sent is not None and sent.sent_at else warning.created_at
            sent_at = when.isoformat()
        record = consent_services.record_consent(
            visitor=self.visitor,
            version=self.version,
            language=self.visitor.language,
            state=ConsentState.GIVEN,
            method=method,
            origin=self.kind,
            source_type=self.source.type,
            source_id=self.source.id,
            source_label=self.source.label,
            address=conversation_link(self.conversation),
            ip="",
            ip_missing_reason=NO_IP_REASON,
            user_agent="",
            channel=self.channel,
            conversation=self.conversation,
            evidence={
                "messenger": self.kind,
                "mode": mode,
                "warning_message_id": warning.id if warning else None,
                "warning_sent_at": sent_at,
                "confirming_message_key": self.message.external_id,
                "confirming_message_id": self.message.id,
            },
            channel_settings=_settings(self.channel),
        )
        self._set_visitor(awaiting_consent_since=None)
        return record

    def withdraw_by_keyword(self) -> str:
        visitor = self.visitor
        latest = consent_services.current_state(
            visitor=visitor,
            agreement=self.version.agreement,
        )
        if latest is None or latest.state != ConsentState.GIVEN:
            self._say(notice("nothing_to_withdraw", visitor.language))
            return ""
        consent_services.withdraw_consent(
            visitor=visitor,
            agreement=self.version.agreement,
            origin=self.kind,
            source_type=self.source.type,
            source_id=self.source.id,
            source_label=self.source.label,
            address=conversation_link(self.conversation),
            ip="",
            ip_missing_reason=NO_IP_REASON,
            user_agent="",
            channel=self.channel,
            conversation=self.conversation,
            evidence={
                "messenger": self.kind,
                "keyword_message_key": self.message.external_id,
                "keyword_message_id": self.message.id,
            },
            method=ConsentMethod.WITHDRAWN_BY_CLIENT,
            channel_settings=_settings(self.channel),
        )
        _after_withdrawal(self.conversation, visitor, actor=None)
        return "withdrawn"


def _after_withdrawal(conversation: Conversation, visitor: Visitor, *, actor) -> None:
    """Tell the client, forget the warning (a new one precedes any new consent), close the chat."""
    text = notice("withdrawn", visitor.language)
    if conversation.origin == VisitorOrigin.LIVECHAT:
        outbox.append_message(
            conversation=conversation, sender=SenderKind.SYSTEM, text=text, to_visitor=True
        )
    else:
        outbox.enqueue(conversation=conversation, text=text)
    Visitor.objects.filter(pk=visitor.pk).update(
        warning_version_id=None, awaiting_consent_since=None
    )
    visitor.warning_version_id = None
    visitor.awaiting_consent_since = None
    if conversation.status != ConversationStatus.CLOSED:
        close_conversation(conversation=conversation, actor=actor, reason=WITHDRAWN_REASON)


@transaction.atomic
def withdraw_on_request(*, actor, conversation) -> ConsentRecord:
    """Record the withdrawal a client asked an operator for in the chat; tell them; close it."""
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("channel__agreement", "visitor", "assignee")
        .get(pk=conversation.pk)
    )
    if not can_answer(actor, conversation):
        raise ActionError("forbidden", "You do not answer this Open Channel.")
    channel, visitor = conversation.channel, conversation.visitor
    if channel.agreement_id is None:
        raise ActionError("no_consent", "This Open Channel does not ask for consent.")
    latest = consent_services.current_state(visitor=visitor, agreement=channel.agreement)
    if latest is None or latest.state != ConsentState.GIVEN:
        raise ActionError("not_given", "The client has no consent in force to withdraw.")
    record = consent_services.withdraw_consent(
        visitor=visitor,
        agreement=channel.agreement,
        origin=conversation.origin,
        source_type="conversation",
        source_id=str(conversation.pk),
        source_label=f"Chat #{conversation.pk}",
        address=conversation_link(conversation),
        ip="",
        ip_missing_reason=OPERATOR_NO_IP_REASON,
        user_agent="",
        channel=channel,
        conversation=conversation,
        evidence={"recorded_by_user_id": actor.pk, "recorded_by": str(actor)},
        method=ConsentMethod.WITHDRAWN_ON_REQUEST,
        channel_settings=_settings(channel),
    )
    _after_withdrawal(conversation, visitor, actor=actor)
    return record


__all__ = [
    "ClientRef",
    "InboundResult",
    "SourceRef",
    "conversation_link",
    "get_or_create_client",
    "receive_inbound",
    "record_client_event",
    "record_delivery",
    "version_link",
    "withdraw_on_request",
]
