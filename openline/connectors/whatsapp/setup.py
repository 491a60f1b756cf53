"""WhatsApp connection: validate the token and the phone number ID; Meta confirms by handshake."""

from __future__ import annotations

from openline.connectors.base import SetupResult
from openline.connectors.whatsapp import client


def connect(*, secrets: dict, config: dict, webhook_url: str) -> SetupResult:
    """Check the credentials with a cheap read of the phone number; not confirmed until Meta calls.

    The webhook URL and verify token are entered in the Meta app dashboard; Meta then sends the
    GET handshake, which the webhook view records as the confirmation.
    """
    data = client.phone_number(secrets=secrets, config=config)
    number = str(data.get("display_phone_number") or "")
    name = str(data.get("verified_name") or "")
    detail = f"{name} ({number})" if name and number else number or name
    return SetupResult(
        confirmed=False,
        detail=detail,
        config={"display_phone_number": number, "verified_name": name},
    )


def disconnect(*, secrets: dict, config: dict) -> None:
    """Nothing to unregister: the webhook belongs to the Meta app, not to the phone number."""
