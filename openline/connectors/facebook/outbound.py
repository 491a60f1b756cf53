"""Messenger sending: Send API text with optional quick replies (messaging_type RESPONSE)."""

from __future__ import annotations

from typing import Any

from openline.connectors.base import Outgoing, TransportError
from openline.connectors.facebook import client

TEXT_LIMIT = 2000
TITLE_LIMIT = 20  # quick reply title
PAYLOAD_LIMIT = 1000  # quick reply payload
MAX_QUICK_REPLIES = 13


def send(outgoing: Outgoing, *, secrets: dict, config: dict) -> str:
    """Send one message from the page; return its mid."""
    return client.post_message(message_body(outgoing), secrets=secrets, config=config)


def message_body(outgoing: Outgoing) -> dict[str, Any]:
    """Build the Send API body: a RESPONSE to the client, buttons as text quick replies."""
    message: dict[str, Any] = {"text": outgoing.text}
    if outgoing.buttons:
        if len(outgoing.buttons) > MAX_QUICK_REPLIES:
            raise TransportError("Messenger allows at most 13 quick replies", permanent=True)
        if any(len(b.id) > PAYLOAD_LIMIT for b in outgoing.buttons):
            raise TransportError(
                "A quick reply payload is longer than 1000 characters", permanent=True
            )
        message["quick_replies"] = [
            {"content_type": "text", "title": shorten(b.title, TITLE_LIMIT), "payload": b.id}
            for b in outgoing.buttons
        ]
    return {
        "recipient": {"id": outgoing.recipient},
        "messaging_type": "RESPONSE",
        "message": message,
    }


def shorten(text: str, limit: int) -> str:
    """Cut a label to ``limit`` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"
