"""WhatsApp sending: text messages and interactive reply buttons (POST /<phone_number_id>/messages)."""

from __future__ import annotations

import re
from typing import Any

from openline.connectors.base import Outgoing, TransportError
from openline.connectors.whatsapp import client

TEXT_LIMIT = 4096
BODY_LIMIT = 1024  # interactive body.text
TITLE_LIMIT = 20  # reply.title
MAX_BUTTONS = 3
LINK = re.compile(r"https?://", re.IGNORECASE)


def send(outgoing: Outgoing, *, secrets: dict, config: dict) -> str:
    """Send text (with reply buttons if any); return the wamid of the last message sent."""
    if not outgoing.buttons:
        return client.post_message(
            text_body(outgoing.recipient, outgoing.text), secrets=secrets, config=config
        )
    if len(outgoing.buttons) > MAX_BUTTONS:
        raise TransportError("WhatsApp allows at most 3 reply buttons", permanent=True)
    head, tail = split_for_buttons(outgoing.text)
    if head:
        # The interactive body is limited to 1024 characters: the rest goes first as text.
        client.post_message(text_body(outgoing.recipient, head), secrets=secrets, config=config)
    return client.post_message(buttons_body(outgoing, tail), secrets=secrets, config=config)


def recipient(external_id: str) -> str:
    """Write a wa_id as the international number the Cloud API expects in ``to``."""
    return f"+{external_id}" if external_id.isdigit() else external_id


def text_body(to: str, text: str) -> dict[str, Any]:
    """Build a text message body; link previews on when the text carries a link."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient(to),
        "type": "text",
        "text": {"preview_url": bool(LINK.search(text)), "body": text},
    }


def buttons_body(outgoing: Outgoing, text: str) -> dict[str, Any]:
    """Build an interactive reply-buttons body (titles cut to 20 characters)."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient(outgoing.recipient),
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": text},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": b.id, "title": shorten(b.title, TITLE_LIMIT)}}
                    for b in outgoing.buttons
                ]
            },
        },
    }


def shorten(text: str, limit: int) -> str:
    """Cut a label to ``limit`` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def split_for_buttons(text: str) -> tuple[str, str]:
    """Split text into (plain head, interactive body of at most 1024 characters)."""
    if len(text) <= BODY_LIMIT:
        return "", text
    cut = len(text) - BODY_LIMIT
    # Prefer to break at whitespace so no word is split between the two messages.
    space = text.find(" ", cut)
    newline = text.find("\n", cut)
    breaks = [i for i in (space, newline) if i != -1]
    at = min(breaks) if breaks else cut
    if len(text) - at > BODY_LIMIT:
        at = cut
    return text[:at].rstrip(), text[at:].lstrip() or text[-BODY_LIMIT:]
