"""Send a client a Viber message: text, optional keyboard of reply buttons."""

from __future__ import annotations

import json
from typing import Any

from openline.connectors.base import Button, Outgoing, TransportError

from . import client
from .inbound import TRACKING_PREFIX

TEXT_LIMIT = 7000
SENDER_NAME_LIMIT = 28  # Viber's cap on sender.name
DEFAULT_SENDER = "Openline"
GRID = 6  # a Viber keyboard is six columns wide


def send(outgoing: Outgoing, *, secrets: dict, config: dict) -> str:
    """Send one message with send_message; return Viber's message_token as text."""
    data = client.call(
        secrets, "send_message", message_payload(outgoing, config=config), sends=True
    )
    token = data.get("message_token")
    if isinstance(token, bool) or not isinstance(token, int | str) or token == "":
        raise TransportError("Viber accepted the message but returned no message_token.")
    return str(token)


def sender(config: dict) -> dict[str, str]:
    """The sender block: the configured name (else the account's, else "Openline")."""
    name = str(config.get("sender_name") or config.get("account_name") or DEFAULT_SENDER)
    block = {"name": name[:SENDER_NAME_LIMIT]}
    if config.get("sender_avatar"):
        block["avatar"] = str(config["sender_avatar"])
    return block


def message_payload(outgoing: Outgoing, *, config: dict) -> dict[str, Any]:
    """Build the send_message body."""
    payload: dict[str, Any] = {
        "receiver": outgoing.recipient,
        "min_api_version": 1,
        "sender": sender(config),
        "type": "text",
        "text": outgoing.text,
    }
    if outgoing.buttons:
        # Passed back with the client's next message: a reply equal to one of these ids was
        # a button press (inbound._button), not typed text.
        labels = {button.id: button.title for button in outgoing.buttons}
        payload["tracking_data"] = TRACKING_PREFIX + json.dumps(labels, ensure_ascii=False)
        payload["keyboard"] = keyboard(outgoing.buttons)
    return payload


def keyboard(buttons: tuple[Button, ...]) -> dict[str, Any]:
    """Reply buttons whose ActionBody (the button id) comes back as the client's text."""
    columns = GRID // min(len(buttons), 3)  # 1-3 buttons share a row, more wrap
    return {
        "Type": "keyboard",
        "DefaultHeight": False,
        "Buttons": [
            {
                "Columns": columns,
                "Rows": 1,
                "ActionType": "reply",
                "ActionBody": button.id,
                "Text": button.title,
            }
            for button in buttons
        ],
    }
