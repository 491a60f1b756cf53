"""What every messenger connector implements, and the typed events it produces.

The conversation core never sees a platform payload: a connector turns a verified webhook
body into these events, and sends outgoing text (optionally with buttons) through the
platform's API, raising ``TransportError`` that says whether retrying can help.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

import httpx


class TransportError(Exception):
    """A platform call failed; ``permanent`` says retrying will not help.

    ``retry_after`` (seconds) is the platform's own hint (Telegram 429 ``retry_after``,
    WhatsApp/Messenger rate-limit codes, Viber status 4) and is honoured by the outbox.
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


# httpx errors raised once the request was (or may have been) written to the platform: the
# platform may have accepted the message, so resending could deliver it twice.
AFTER_WRITE_ERRORS: tuple[type[httpx.HTTPError], ...] = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
)
DELIVERY_UNCERTAIN = "Delivery uncertain: the platform did not answer in time; resend if needed"


def delivery_uncertain() -> TransportError:
    """Return the permanent error for a send the platform may or may not have accepted."""
    return TransportError(DELIVERY_UNCERTAIN, permanent=True)


class VerificationError(Exception):
    """An incoming request is not authentic (bad or missing signature/secret): answer 401/403."""

    def __init__(self, message: str, *, status: int = 403):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ClientIdentity:
    """Who wrote, as the platform names them (no IP: platforms never tell it)."""

    external_id: str  # Telegram chat id, WhatsApp wa_id, Messenger PSID, Viber user id
    name: str = ""
    language: str = ""  # IETF tag when the platform tells it (Telegram, Viber)
    phone: str = ""  # WhatsApp gives the number
    username: str = ""  # Telegram @username


@dataclass(frozen=True)
class InboundMessage:
    """A client's message (text, or a button press carrying ``button``)."""

    key: str  # the platform's idempotency key; unique per connector
    client: ClientIdentity
    text: str
    sent_at: datetime | None = None
    # The payload of a pressed native button, passed through unchanged (the consent warning's
    # are "consent:accept:<version_id>" / "consent:decline:<version_id>"), or "".
    button: str = ""
    platform_message_id: str = ""
    # False for what the client did not write: reactions, edits, deletions, platform system
    # and service notices. Shown to operators, but never "the client wrote again" (consent).
    content: bool = True
    kind: ClassVar[str] = "message"


@dataclass(frozen=True)
class StatusEvent:
    """A delivery mark for a message Openline sent: sent, delivered, read or failed."""

    key: str
    platform_message_id: str  # as returned by the send API; "" with ``watermark`` (Messenger)
    state: str  # "sent" | "delivered" | "read" | "failed"
    client_external_id: str = ""
    error: str = ""
    at: datetime | None = None
    # Messenger/Viber-style marks that cover everything up to a time (watermark).
    watermark: datetime | None = None
    kind: ClassVar[str] = "status"


@dataclass(frozen=True)
class ClientEvent:
    """Anything else about a client: subscribed, unsubscribed/blocked, conversation started."""

    key: str
    client: ClientIdentity
    event: str  # "subscribed" | "unsubscribed" | "started" | "ignored"
    kind: ClassVar[str] = "client"


InboundEvent = InboundMessage | StatusEvent | ClientEvent


def event_to_json(event: InboundEvent) -> dict[str, Any]:
    """Serialise a typed event for the durable intake (connectors.models.InboundEvent.event)."""
    data = asdict(event)
    data["kind"] = event.kind
    for name, value in list(data.items()):
        if isinstance(value, datetime):
            data[name] = value.isoformat()
    return data


def event_from_json(data: dict[str, Any]) -> InboundEvent:
    """Rebuild a typed event stored by ``event_to_json``."""
    data = dict(data)
    kind = data.pop("kind")
    for name in ("sent_at", "at", "watermark"):
        if data.get(name):
            data[name] = datetime.fromisoformat(data[name])
    if "client" in data:
        data["client"] = ClientIdentity(**data["client"])
    if kind == "message":
        return InboundMessage(**data)
    if kind == "status":
        return StatusEvent(**data)
    return ClientEvent(**data)


@dataclass(frozen=True)
class Button:
    id: str  # echoed back in InboundMessage.button when pressed
    title: str


@dataclass(frozen=True)
class Outgoing:
    """What to send: text, optionally with native reply buttons."""

    recipient: str  # ClientIdentity.external_id
    text: str
    buttons: tuple[Button, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SetupResult:
    """What connecting told us: confirmed now (Telegram, Viber) or waiting for the platform."""

    confirmed: bool
    detail: str = ""  # e.g. "@openline_demo_bot", shown on the connector page
    config: dict[str, Any] = field(default_factory=dict)  # non-secret facts to keep


@dataclass(frozen=True)
class RawRequest:
    """An incoming HTTP request, as a connector needs it: raw bytes, never re-serialised."""

    method: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class HandshakeReply:
    """A direct answer to a platform handshake (Meta's GET hub.challenge)."""

    status: int
    body: str


class Platform(Protocol):
    """One messenger platform. Every ``connectors/<platform>/`` package exposes one of these.

    ``secrets`` and ``config`` are the connector's decrypted credentials and non-secret
    settings; ``webhook_url`` is the public URL the platform must call.
    """

    kind: str  # "telegram" | "whatsapp" | "facebook" | "viber"
    text_limit: int  # longer replies are split
    secret_fields: tuple[str, ...]  # credential names entered by the administrator
    config_fields: tuple[str, ...]  # non-secret names entered by the administrator

    def handshake(
        self, request: RawRequest, *, secrets: dict, config: dict
    ) -> HandshakeReply | None:
        """Answer a verification handshake (GET), or None when the request is not one."""

    def verify(self, request: RawRequest, *, secrets: dict, config: dict) -> None:
        """Raise VerificationError unless the request is authentic (checked on raw bytes)."""

    def parse(self, request: RawRequest, *, config: dict) -> list[InboundEvent]:
        """Turn a verified body into typed events (a batch may hold several)."""

    def send(self, outgoing: Outgoing, *, secrets: dict, config: dict) -> str:
        """Send one message; return the platform's message id or raise TransportError."""

    def connect(self, *, secrets: dict, config: dict, webhook_url: str) -> SetupResult:
        """Validate credentials and register the webhook; raise TransportError on failure."""

    def disconnect(self, *, secrets: dict, config: dict) -> None:
        """Unregister the webhook where the platform allows it (best effort)."""

    def profile(self, client: ClientIdentity, *, secrets: dict, config: dict) -> ClientIdentity:
        """Fill in the client's name/language from the platform if the event lacked them."""
