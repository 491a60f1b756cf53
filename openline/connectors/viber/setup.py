"""Connect a Viber bot: register the webhook, read the account's name."""

from __future__ import annotations

import logging
from typing import Any

from openline.connectors.base import SetupResult, TransportError

from . import client

logger = logging.getLogger(__name__)

# "message" and "webhook" are always sent; these are the optional ones Openline uses.
EVENT_TYPES = [
    "delivered",
    "seen",
    "failed",
    "subscribed",
    "unsubscribed",
    "conversation_started",
]


def connect(*, secrets: dict, webhook_url: str) -> SetupResult:
    """Call set_webhook (Viber checks the URL at once), then get_account_info for the name."""
    if not webhook_url:
        raise TransportError("Viber needs a public HTTPS webhook URL.", permanent=True)
    client.call(secrets, "set_webhook", {"url": webhook_url, "event_types": EVENT_TYPES})
    config: dict[str, Any] = {}
    try:
        account = client.call(secrets, "get_account_info", {})
    except TransportError as exc:
        # The webhook is set, which is what matters; the name is only a nicety.
        logger.warning("Could not read the Viber account's name: %s", exc.message)
    else:
        for source, target in (("id", "account_id"), ("name", "account_name"), ("uri", "uri")):
            if isinstance(account.get(source), str):
                config[target] = account[source]
    return SetupResult(
        confirmed=True, detail=config.get("account_name") or "Viber bot", config=config
    )


def disconnect(*, secrets: dict) -> None:
    """Remove the webhook with an empty URL (best effort)."""
    try:
        client.call(secrets, "set_webhook", {"url": ""})
    except TransportError as exc:
        logger.warning("Could not remove the Viber webhook: %s", exc.message)
