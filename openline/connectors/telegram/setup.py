"""Connect a Telegram bot: check the token, then register the webhook (or clear it to poll)."""

from __future__ import annotations

import logging
from typing import Any

from openline.connectors.base import SetupResult, TransportError

from . import client

logger = logging.getLogger(__name__)

# Telegram's own default, stated so the request is explicit.
MAX_CONNECTIONS = 40


def connect(*, secrets: dict, webhook_url: str) -> SetupResult:
    """getMe, then setWebhook (webhook_url given) or deleteWebhook (long polling: "")."""
    me = client.call(secrets, "getMe", {})
    if not isinstance(me, dict) or not isinstance(me.get("id"), int):
        raise TransportError("Telegram's getMe answer does not describe a bot.")
    username = str(me.get("username") or "")
    if webhook_url:
        secret = secrets.get("secret_token")
        if not isinstance(secret, str) or not secret:
            raise TransportError("The webhook secret token is missing.", permanent=True)
        payload: dict[str, Any] = {
            "url": webhook_url,
            "secret_token": secret,
            "max_connections": MAX_CONNECTIONS,
            "allowed_updates": client.ALLOWED_UPDATES,
            "drop_pending_updates": False,
        }
        client.call(secrets, "setWebhook", payload)
    else:
        # getUpdates fails (409) while a webhook is set, so polling starts by removing it.
        client.call(secrets, "deleteWebhook", {"drop_pending_updates": False})
    return SetupResult(
        confirmed=True,
        detail=f"@{username}" if username else str(me["id"]),
        config={"bot_id": me["id"], "username": username},
    )


def disconnect(*, secrets: dict) -> None:
    """Remove the webhook (best effort: the bot may already be gone)."""
    try:
        client.call(secrets, "deleteWebhook", {"drop_pending_updates": False})
    except TransportError as exc:
        logger.warning("Could not remove the Telegram webhook: %s", exc.message)
