"""Send a client a Telegram message: plain text, optional inline keyboard."""

from __future__ import annotations

import re
from typing import Any

from openline.connectors.base import Button, Outgoing, TransportError

from . import client

TEXT_LIMIT = 4096
BUTTONS_PER_ROW = 2
_NUMERIC = re.compile(r"-?\d+")


def send(outgoing: Outgoing, *, secrets: dict) -> str:
    """Send one message with sendMessage; return Telegram's message_id as text."""
    payload = message_payload(outgoing)
    result = client.call(secrets, "sendMessage", payload, sends=True)
    message_id = result.get("message_id") if isinstance(result, dict) else None
    if isinstance(message_id, bool) or not isinstance(message_id, int):
        raise TransportError("Telegram accepted the message but returned no message_id.")
    return str(message_id)


def message_payload(outgoing: Outgoing) -> dict[str, Any]:
    """Build the sendMessage body: plain text (no parse_mode, so client text needs no escaping)."""
    recipient = outgoing.recipient.strip()
    chat_id: int | str = int(recipient) if _NUMERIC.fullmatch(recipient) else recipient
    payload: dict[str, Any] = {"chat_id": chat_id, "text": outgoing.text}
    if outgoing.buttons:
        payload["reply_markup"] = {"inline_keyboard": _keyboard(outgoing.buttons)}
    return payload


def _keyboard(buttons: tuple[Button, ...]) -> list[list[dict[str, str]]]:
    keys = []
    for button in buttons:
        # callback_data comes back verbatim as CallbackQuery.data; Telegram caps it at 64 bytes.
        if not 1 <= len(button.id.encode("utf-8")) <= 64:
            raise TransportError(
                f"Telegram button ids must be 1-64 bytes: {button.id[:70]!r}", permanent=True
            )
        keys.append({"text": button.title, "callback_data": button.id})
    return [keys[i : i + BUTTONS_PER_ROW] for i in range(0, len(keys), BUTTONS_PER_ROW)]
