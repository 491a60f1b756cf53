"""Channel-neutral messenger conversations: clients, inbound messages, marks, consent.

Every messenger face (``connectors/<platform>/``) turns a platform payload into typed values
and calls these actions; nothing here sees a payload. Consent by continued conversation:
the client's first message gets the channel's warning with a link to the exact version;
their next message confirms it once the warning was really sent, and only if the platform
says it was written after that (or, in buttons mode, the "I accept" button naming that
exact version does). Reactions, edits and service messages never confirm.

An erased client has a blank ``external_id`` (``conversations.erasure``), so when they write
again they are a new visitor: a fresh profile, a fresh warning, their old consent records stay
with the pseudonymous old profile.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from openline.consent import services as consent_services
from openline.consent.models import AgreementVersion, ConsentMethod, ConsentRecord, ConsentState
from openline.conversations import outbox
from openline.conversations.actions import (
    ActionError,
    start_conversation,
    touch_visitor,
)
from openline.conversations.models import (
    Conversation,
    ConversationStatus,
    Message,
    OutboxItem,
    OutboxState,
    SenderKind,
    Visitor,
    VisitorOrigin,
)
from openline.conversations.notices import notice

# Platform events (delivery marks, blocked/unsubscribed) live next door; exported here too,
# so a face finds every channel-neutral messenger action in this module.
from openline.conversations.platform_events import record_client_event, record_delivery
from openline.conversations.withdrawal import (
    WITHDRAWN_REASON,
    withdraw_by_keyword,
    withdraw_on_request,
)
from openline.openchannels import policy
from openline.openchannels.models import MessengerConsentMode, OpenChannel
from openline.openchannels.services import consent_settings

ACCEPT = "consent:accept"
DECLINE = "consent:decline"
NO_IP_REASON = "Not provided by the platform: messengers do not tell the client's IP address."
OPERATOR_NO_IP_REASON = "Recorded by an operator on the client's request: no client IP address."
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
    sent_at: datetime | None = None,
    content: bool = True,
) -> InboundResult:
    """Store a client's message (once per ``key``), publish it, and apply the consent policy.

    ``sent_at`` is when the platform says the client sent it (None: unknown); ``content``
    False marks a reaction, an edit or a service message: shown, but it never confirms.
    """
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
    # Withdrawal is always possible, whatever the channel asks now (Art. 7(3) GDPR).
    if content and not button and policy.is_withdraw_keyword(channel, text, visitor.language):
        consent = withdraw_by_keyword(
            channel=channel,
            kind=kind,
            visitor=visitor,
            conversation=conversation,
            message=message,
            source=source,
        )
        return InboundResult(visitor, conversation, message, False, consent, declined)
    version = _current_version(channel)
    if version is not None and content:
        step = _Step(channel, kind, visitor, conversation, message, version, source, sent_at)
        consent, declined = step.consent(button=button, started=started)
    return InboundResult(visitor, conversation, message, False, consent, declined)


def button_payload(action: str, version) -> str:
    """Return the native button payload naming the action and the exact version warned about."""
    return f"{action}:{version.id}"


def parse_button(button: str) -> tuple[str, int | None]:
    """Split a pressed payload into (ACCEPT | DECLINE | "", version id or None)."""
    action, _, tail = (button or "").rpartition(":")
    if action in (ACCEPT, DECLINE) and tail.isdigit():
        return action, int(tail)
    if button in (ACCEPT, DECLINE):
        return button, None  # a bare payload names no version: ambiguous
    return "", None


def _button_title(button: str, language: str) -> str:
    accept, decline = policy.button_labels(language)
    return {ACCEPT: accept, DECLINE: decline}.get(parse_button(button)[0], "")


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
    sent_at: datetime | None = None

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
        awaiting = visitor.awaiting_consent_since is not None
        action, pressed = parse_button(button)
        if action == DECLINE:
            if awaiting and pressed is not None and pressed == visitor.warning_version_id:
                # No refusal is stored; the caller deletes what was stored of the client.
                outbox.enqueue(
                    conversation=self.conversation,
                    text=notice("declined", visitor.language),
                    final=True,
                )
                return "declined", True
            # An old warning's button: there is nothing to decline now (never an error).
            self._say(notice("nothing_to_decline", visitor.language))
            return "", False
        if mode == MessengerConsentMode.BUTTONS:
            if action == ACCEPT and warned_current and awaiting and pressed == version.id:
                self._record(ConsentMethod.CLICKED_ACCEPT, mode, self._warning_item())
                self._say(notice("thanks", visitor.language))
                return "given", False
            if action == ACCEPT and awaiting:
                # A bare or another version's "I accept" proves nothing: show the current one.
                self._warn(mode)
                return "warned", False
            if warned_current and awaiting:
                return "", False  # plain text while awaiting the click confirms nothing
        elif warned_current and awaiting:
            item = self._warning_item()
            if item is not None and item.state == OutboxState.SENT and item.sent_at:
                if self.sent_at is None or self.sent_at > item.sent_at:
                    self._record(ConsentMethod.CONTINUED_CHATTING, mode, item)
                    return "given", False
                return "", False  # written before the warning reached them
            if item is not None and item.state in (OutboxState.PENDING, OutboxState.SENDING):
                return "", False  # the warning is not out yet: nothing to confirm
            # The warning never reached them (failed / uncertain / gone): warn again below.
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
            # The payload names the version, so an old warning's button never confirms a new one.
            buttons = [
                {"id": button_payload(ACCEPT, self.version), "title": accept},
                {"id": button_payload(DECLINE, self.version), "title": decline},
            ]
        self._say(text, buttons)
        self._set_visitor(
            warning_version_id=self.version.id,
            awaiting_consent_since=visitor.awaiting_consent_since or timezone.now(),
        )

    def _warning_item(self) -> OutboxItem | None:
        """Return the newest outbox item carrying this version's warning to this client."""
        link = version_link(self.version)
        return (
            OutboxItem.objects.filter(
                conversation__visitor=self.visitor,
                message__sender=SenderKind.SYSTEM,
                message__text__contains=link,
            )
            .select_related("message")
            .order_by("-id")
            .first()
        )

    def _record(self, method: str, mode: str, item: OutboxItem | None) -> ConsentRecord:
        warning = item.message if item is not None else None
        # Only a real send time: a queued warning's creation time proves nothing.
        sent_at = item.sent_at.isoformat() if item is not None and item.sent_at else None
        warning_text = warning.text if warning is not None else ""
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
                "warning_text": warning_text,
                "warning_text_sha256": hashlib.sha256(warning_text.encode()).hexdigest()
                if warning_text
                else None,
                "confirming_message_sent_at": self.sent_at.isoformat() if self.sent_at else None,
                "confirming_message_key": self.message.external_id,
                "confirming_message_id": self.message.id,
            },
            channel_settings=_settings(self.channel),
        )
        self._set_visitor(awaiting_consent_since=None)
        return record


__all__ = [
    "WITHDRAWN_REASON",
    "ClientRef",
    "InboundResult",
    "SourceRef",
    "button_payload",
    "conversation_link",
    "get_or_create_client",
    "parse_button",
    "receive_inbound",
    "record_client_event",
    "record_delivery",
    "version_link",
    "withdraw_on_request",
]
