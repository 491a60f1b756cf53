"""Facebook Messenger connector: one Facebook page per connector."""

from __future__ import annotations

import logging
from dataclasses import replace

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
from openline.connectors.facebook import client as graph
from openline.connectors.facebook import inbound, outbound, setup

log = logging.getLogger(__name__)


class FacebookPlatform:
    """The Messenger Platform (Send API + page webhooks) as an Openline ``Platform``."""

    kind: str = "facebook"
    text_limit: int = outbound.TEXT_LIMIT
    secret_fields: tuple[str, ...] = ("page_access_token", "app_secret", "verify_token")
    config_fields: tuple[str, ...] = ("page_id",)

    def handshake(
        self, request: RawRequest, *, secrets: dict, config: dict
    ) -> HandshakeReply | None:
        """Answer Meta's hub.challenge GET."""
        return inbound.handshake(request, secrets=secrets, config=config)

    def verify(self, request: RawRequest, *, secrets: dict, config: dict) -> None:
        """Check X-Hub-Signature-256 over the raw body."""
        inbound.verify(request, secrets=secrets, config=config)

    def parse(self, request: RawRequest, *, config: dict) -> list[InboundEvent]:
        """Turn a page webhook body into messages and delivery/read marks."""
        return inbound.parse(request, config=config)

    def send(self, outgoing: Outgoing, *, secrets: dict, config: dict) -> str:
        """Send text or quick replies; return the mid."""
        return outbound.send(outgoing, secrets=secrets, config=config)

    def connect(self, *, secrets: dict, config: dict, webhook_url: str) -> SetupResult:
        """Validate the page token and subscribe the app to the page."""
        return setup.connect(secrets=secrets, config=config, webhook_url=webhook_url)

    def disconnect(self, *, secrets: dict, config: dict) -> None:
        """Unsubscribe the app from the page (best effort)."""
        setup.disconnect(secrets=secrets, config=config)

    def profile(self, client: ClientIdentity, *, secrets: dict, config: dict) -> ClientIdentity:
        """Fill in the name and language from the User Profile API (best effort)."""
        if client.name and client.language:
            return client
        try:
            data = graph.user_profile(client.external_id, secrets=secrets)
        except TransportError as exc:
            # A missing name is not worth losing the message over: keep what we have.
            log.warning("Could not read a Messenger profile: %s", exc.message)
            return client
        return replace(
            client,
            name=client.name or full_name(data),
            language=client.language or language_tag(data.get("locale")),
        )


def full_name(data: dict) -> str:
    """Join first and last name from a User Profile answer."""
    parts = [data.get("first_name"), data.get("last_name")]
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def language_tag(locale: object) -> str:
    """Turn Facebook's locale ("en_GB") into an IETF language tag ("en-GB")."""
    if not isinstance(locale, str) or not locale.strip():
        return ""
    return locale.strip().replace("_", "-")


PLATFORM: Platform = FacebookPlatform()
