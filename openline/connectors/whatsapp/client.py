"""WhatsApp Cloud API calls: the Graph API with the system-user (or temporary) access token."""

from __future__ import annotations

from typing import Any

from openline.connectors.base import TransportError
from openline.connectors.meta import graph_call


def _token(secrets: dict) -> str:
    return str(secrets.get("access_token") or "")


def phone_number_id(config: dict) -> str:
    """Return the configured phone number ID or raise a permanent TransportError."""
    value = str(config.get("phone_number_id") or "").strip()
    if not value.isdigit():
        raise TransportError("Enter the WhatsApp phone number ID (digits only)", permanent=True)
    return value


def post_message(body: dict[str, Any], *, secrets: dict, config: dict) -> str:
    """POST one message to /<phone_number_id>/messages and return its wamid."""
    data = graph_call(
        "POST", f"{phone_number_id(config)}/messages", token=_token(secrets), body=body, sends=True
    )
    messages = data.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        wamid = messages[0].get("id")
        if isinstance(wamid, str) and wamid:
            return wamid
    # Accepted but without an id: retrying could send the message twice.
    raise TransportError("WhatsApp accepted the message but returned no message id", permanent=True)


def phone_number(*, secrets: dict, config: dict) -> dict[str, Any]:
    """Read the business phone number's display number and verified name."""
    return graph_call(
        "GET",
        phone_number_id(config),
        token=_token(secrets),
        params={"fields": "display_phone_number,verified_name"},
    )
