"""Viber REST Bot API connector: signed callbacks, text replies, reply-button keyboards."""

from __future__ import annotations

import logging

from openline.connectors.base import (
    ClientIdentity,
    HandshakeReply,
    InboundEvent,
    Outgoing,
    Platform,
    RawRequest,
    SetupResult,
    TransportError,
)

from . import client, inbound, outbound, setup

logger = logging.getLogger(__name__)


class ViberPlatform:
    """The Viber implementation of ``connectors.base.Platform``.

    Secret: ``auth_token``. Nothing else is entered: the sender name is the account's name read
    at connect (config ``account_name``), unless config holds ``sender_name`` (<= 28 chars;
    optional, so not in ``config_fields``, which the setup form requires), else "Openline".
    """

    kind: str = "viber"
    text_limit: int = outbound.TEXT_LIMIT
    secret_fields: tuple[str, ...] = ("auth_token",)
    config_fields: tuple[str, ...] = ()

    def handshake(
        self, request: RawRequest, *, secrets: dict, config: dict
    ) -> HandshakeReply | None:
        """Return None: Viber checks the webhook with a signed POST ("webhook" event)."""
        return None

    def verify(self, request: RawRequest, *, secrets: dict, config: dict) -> None:
        """Check X-Viber-Content-Signature over the raw body."""
        inbound.verify(request, secrets=secrets)

    def parse(self, request: RawRequest, *, config: dict) -> list[InboundEvent]:
        """Turn one callback into one typed event."""
        return inbound.parse(request)

    def send(self, outgoing: Outgoing, *, secrets: dict, config: dict) -> str:
        """Send text (and a keyboard); return the message_token."""
        return outbound.send(outgoing, secrets=secrets, config=config)

    def connect(self, *, secrets: dict, config: dict, webhook_url: str) -> SetupResult:
        """Set the webhook; confirmed when Viber answers status 0."""
        return setup.connect(secrets=secrets, webhook_url=webhook_url)

    def disconnect(self, *, secrets: dict, config: dict) -> None:
        """Remove the webhook (best effort)."""
        setup.disconnect(secrets=secrets)

    def profile(self, client: ClientIdentity, *, secrets: dict, config: dict) -> ClientIdentity:
        """Fill in the name and language with get_user_details when the event lacked the name."""
        if client.name or not client.external_id:
            return client
        return _details(client, secrets=secrets)


def _details(identity: ClientIdentity, *, secrets: dict) -> ClientIdentity:
    try:
        data = client.call(secrets, "get_user_details", {"id": identity.external_id})
    except TransportError as exc:
        # Viber allows two lookups per user per 12 hours: a nameless client is no failure.
        logger.warning("Could not read a Viber client's profile: %s", exc.message)
        return identity
    user = data.get("user")
    if not isinstance(user, dict):
        return identity
    name = user.get("name")
    language = user.get("language")
    return ClientIdentity(
        external_id=identity.external_id,
        name=name if isinstance(name, str) else identity.name,
        language=identity.language or (language if isinstance(language, str) else ""),
        phone=identity.phone,
        username=identity.username,
    )


PLATFORM = ViberPlatform()
# mypy checks here that the class satisfies the shared Platform protocol.
_CONFORMS: Platform = PLATFORM

__all__ = ["PLATFORM", "ViberPlatform"]
