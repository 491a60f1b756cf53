"""WhatsApp (Meta Cloud API) connector: one business phone number per connector."""

from __future__ import annotations

from openline.connectors.base import (
    ClientIdentity,
    HandshakeReply,
    InboundEvent,
    Outgoing,
    Platform,
    RawRequest,
    SetupResult,
)
from openline.connectors.whatsapp import inbound, outbound, setup


class WhatsAppPlatform:
    """The WhatsApp Cloud API as an Openline ``Platform``."""

    kind: str = "whatsapp"
    text_limit: int = outbound.TEXT_LIMIT
    secret_fields: tuple[str, ...] = ("access_token", "app_secret", "verify_token")
    config_fields: tuple[str, ...] = ("phone_number_id",)

    def handshake(
        self, request: RawRequest, *, secrets: dict, config: dict
    ) -> HandshakeReply | None:
        """Answer Meta's hub.challenge GET."""
        return inbound.handshake(request, secrets=secrets, config=config)

    def verify(self, request: RawRequest, *, secrets: dict, config: dict) -> None:
        """Check X-Hub-Signature-256 over the raw body."""
        inbound.verify(request, secrets=secrets, config=config)

    def parse(self, request: RawRequest, *, config: dict) -> list[InboundEvent]:
        """Turn a webhook body into messages and statuses."""
        return inbound.parse(request, config=config)

    def send(self, outgoing: Outgoing, *, secrets: dict, config: dict) -> str:
        """Send text or reply buttons; return the wamid."""
        return outbound.send(outgoing, secrets=secrets, config=config)

    def connect(self, *, secrets: dict, config: dict, webhook_url: str) -> SetupResult:
        """Validate the credentials (Meta confirms later through the handshake)."""
        return setup.connect(secrets=secrets, config=config, webhook_url=webhook_url)

    def disconnect(self, *, secrets: dict, config: dict) -> None:
        """Nothing to unregister for a phone number."""
        setup.disconnect(secrets=secrets, config=config)

    def profile(self, client: ClientIdentity, *, secrets: dict, config: dict) -> ClientIdentity:
        """Return the identity unchanged: webhooks already carry the name and number."""
        return client


PLATFORM: Platform = WhatsAppPlatform()
