"""Messenger connection: check the page token, subscribe the app to the page's webhooks."""

from __future__ import annotations

import logging

from openline.connectors.base import SetupResult, TransportError
from openline.connectors.facebook import client

log = logging.getLogger(__name__)


def connect(*, secrets: dict, config: dict, webhook_url: str) -> SetupResult:
    """Read the page name and subscribe the app to it; Meta confirms through the handshake.

    The callback URL and verify token are entered in the Meta app dashboard (Graph cannot set
    them with a page token); the subscription makes the page's messages reach that callback.
    """
    page = client.page(secrets=secrets, config=config)
    answer = client.subscribe(secrets=secrets, config=config)
    if answer.get("success") is not True:
        raise TransportError("Facebook did not subscribe the app to the page", permanent=True)
    name = str(page.get("name") or "")
    return SetupResult(confirmed=False, detail=name, config={"page_name": name})


def disconnect(*, secrets: dict, config: dict) -> None:
    """Unsubscribe the app from the page (best effort: the token may already be revoked)."""
    try:
        client.unsubscribe(secrets=secrets, config=config)
    except TransportError as exc:
        log.warning("Could not unsubscribe from the Facebook page: %s", exc.message)
