"""Messenger Platform calls: the Graph API with the page access token."""

from __future__ import annotations

from typing import Any

from openline.connectors.base import TransportError
from openline.connectors.meta import graph_call

# The webhook fields the page must send to this app (subscribed_apps).
SUBSCRIBED_FIELDS = "messages,messaging_postbacks,message_deliveries,message_reads"


def _token(secrets: dict) -> str:
    return str(secrets.get("page_access_token") or "")


def page_id(config: dict) -> str:
    """Return the configured page ID or raise a permanent TransportError."""
    value = str(config.get("page_id") or "").strip()
    if not value.isdigit():
        raise TransportError("Enter the Facebook page ID (digits only)", permanent=True)
    return value


def post_message(body: dict[str, Any], *, secrets: dict, config: dict) -> str:
    """POST one Send API message from the page and return its message id (mid)."""
    data = graph_call(
        "POST", f"{page_id(config)}/messages", token=_token(secrets), body=body, sends=True
    )
    mid = data.get("message_id")
    if isinstance(mid, str) and mid:
        return mid
    # Accepted but without an id: retrying could send the message twice.
    raise TransportError(
        "Messenger accepted the message but returned no message id", permanent=True
    )


def page(*, secrets: dict, config: dict) -> dict[str, Any]:
    """Read the page's name (proves the page token belongs to this page)."""
    return graph_call("GET", page_id(config), token=_token(secrets), params={"fields": "id,name"})


def subscribe(*, secrets: dict, config: dict) -> dict[str, Any]:
    """Subscribe the app to the page's messaging webhooks."""
    return graph_call(
        "POST",
        f"{page_id(config)}/subscribed_apps",
        token=_token(secrets),
        params={"subscribed_fields": SUBSCRIBED_FIELDS},
    )


def unsubscribe(*, secrets: dict, config: dict) -> dict[str, Any]:
    """Remove the app's subscription to the page's webhooks."""
    return graph_call("DELETE", f"{page_id(config)}/subscribed_apps", token=_token(secrets))


def user_profile(psid: str, *, secrets: dict) -> dict[str, Any]:
    """Read a client's first/last name and locale by page-scoped id."""
    if not psid.isdigit():
        raise TransportError("Not a page-scoped user id", permanent=True)
    return graph_call(
        "GET", psid, token=_token(secrets), params={"fields": "first_name,last_name,locale"}
    )
