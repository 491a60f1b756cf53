"""Viber callbacks: check the body signature, turn callbacks into typed events."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import Any

from openline.connectors.base import (
    ClientEvent,
    ClientIdentity,
    InboundEvent,
    InboundMessage,
    RawRequest,
    StatusEvent,
    VerificationError,
)

SIGNATURE_HEADER = "x-viber-content-signature"

# The consent buttons' payloads ("consent:accept:<version_id>", bare on old warnings); a Viber
# reply button sends its ActionBody as the client's text, so such a text is taken as a press
# even without tracking data (a later message without a keyboard replaces the tracking data).
NATIVE_BUTTON = re.compile(r"consent:(?:accept|decline)(?::\d{1,20})?")
# outbound.py marks keyboard messages with this tracking_data prefix; Viber hands it back
# with the client's next message, which tells a pressed button from typed text.
TRACKING_PREFIX = "openline:buttons:"

RECEIPTS = {"delivered": "delivered", "seen": "read", "failed": "failed"}
CLIENT_EVENTS = {
    "subscribed": "subscribed",
    "unsubscribed": "unsubscribed",
    "conversation_started": "started",
}


def verify(request: RawRequest, *, secrets: dict) -> None:
    """Raise VerificationError unless the header is HMAC-SHA256(auth token, raw body) in hex."""
    token = secrets.get("auth_token")
    if not isinstance(token, str) or not token:
        raise VerificationError("No Viber auth token is configured.", status=403)
    given = request.headers.get(SIGNATURE_HEADER)
    if not given:
        raise VerificationError("The Viber signature header is missing.", status=401)
    expected = hmac.new(token.encode("utf-8"), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.strip().lower().encode("utf-8"), expected.encode("ascii")):
        raise VerificationError("The Viber signature does not match the body.", status=403)


def parse(request: RawRequest) -> list[InboundEvent]:
    """Turn one callback body into typed events; ValueError when malformed."""
    try:
        body = json.loads(request.body)
    except RecursionError:
        raise ValueError("The callback is nested too deeply.") from None
    return [parse_callback(body)]


def parse_callback(body: Any) -> InboundEvent:
    """Turn one decoded callback into a typed event keyed by message_token:event."""
    body = _obj(body, "callback")
    event = _str(body.get("event"), "event")
    token = body.get("message_token")
    if isinstance(token, bool) or not isinstance(token, int | str) or token == "":
        raise ValueError("message_token is missing")
    # Tokens exceed 2**53: json keeps them exact ints; str() keeps them exact text.
    key = f"{token}:{event}"
    at = _timestamp(body.get("timestamp"))
    if event == "message":
        return _message(key, str(token), body, at)
    if event in RECEIPTS:
        user_id = body.get("user_id")
        return StatusEvent(
            key=key,
            platform_message_id=str(token),
            state=RECEIPTS[event],
            client_external_id=_opt_str(user_id),
            error=_opt_str(body.get("desc")) if event == "failed" else "",
            at=at,
        )
    if event in CLIENT_EVENTS:
        if event == "unsubscribed":
            client = ClientIdentity(external_id=_str(body.get("user_id"), "user_id"))
        else:
            client = _identity(_obj(body.get("user"), "user"))
        return ClientEvent(key=key, client=client, event=CLIENT_EVENTS[event])
    # "webhook" (sent while set_webhook runs), "action", "client_status"...: acknowledged.
    return ClientEvent(key=key, client=ClientIdentity(external_id=""), event="ignored")


def _message(key: str, token: str, body: dict, at: datetime | None) -> InboundMessage:
    client = _identity(_obj(body.get("sender"), "sender"))
    message = _obj(body.get("message"), "message")
    kind = _opt_str(message.get("type")) or "text"
    text = _opt_str(message.get("text"))
    button, label = _button(text, message.get("tracking_data")) if kind == "text" else ("", "")
    if kind != "text":
        media = _opt_str(message.get("media")) if kind == "url" else ""
        text = " ".join(part for part in (f"[{kind}]", text or media) if part)
    return InboundMessage(
        key=key,
        client=client,
        text=label or text,
        sent_at=at,
        button=button,
        platform_message_id=token,
    )


def _button(text: str, tracking: Any) -> tuple[str, str]:
    """Return (payload, label) when ``text`` is a reply button's ActionBody."""
    if isinstance(tracking, str) and tracking.startswith(TRACKING_PREFIX):
        try:
            labels = json.loads(tracking[len(TRACKING_PREFIX) :])
        except (ValueError, RecursionError):
            labels = None
        if isinstance(labels, dict) and text in labels:
            return text, _opt_str(labels[text])
    if NATIVE_BUTTON.fullmatch(text):
        return text, ""
    return "", ""


def _identity(user: dict) -> ClientIdentity:
    return ClientIdentity(
        external_id=_str(user.get("id"), "user.id"),
        name=_opt_str(user.get("name")),
        language=_opt_str(user.get("language")),
    )


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("timestamp is not an integer")
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("timestamp is out of range") from None


def _obj(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is not a string")
    return _clean(value)


def _opt_str(value: Any) -> str:
    return _clean(value) if isinstance(value, str) else ""


def _clean(text: str) -> str:
    # A lone UTF-16 surrogate (legal in JSON, illegal in UTF-8) would break the database.
    return text.encode("utf-8", "replace").decode("utf-8")
