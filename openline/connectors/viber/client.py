"""Viber REST Bot API calls over httpx, with error answers mapped to ``TransportError``.

Viber answers almost every error with HTTP 200 and a non-zero ``status`` in the body, so the
body's status decides, not the HTTP code. The auth token travels in a header only.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings

from openline.connectors.base import AFTER_WRITE_ERRORS, TransportError, delivery_uncertain

AUTH_HEADER = "X-Viber-Auth-Token"

NOT_SUBSCRIBED = 6
TOO_MANY_REQUESTS = 12
# Viber gives no hint for status 12 (documented as >100 messages an hour to one user without
# a reply), so the retry waits a few minutes rather than hammering the same limit.
RATE_LIMIT_RETRY_AFTER = 300.0

# Statuses a retry cannot fix (Viber REST API, "Error codes").
PERMANENT = {
    1: "invalid webhook URL",
    2: "Viber rejected the auth token",
    3: "bad data",
    4: "missing data",
    5: "the client is not registered on Viber",
    NOT_SUBSCRIBED: "the client is not subscribed to the bot (or unsubscribed)",
    7: "the bot account is blocked",
    8: "the bot account was not found",
    9: "the bot account is suspended",
    10: "no webhook is set for the bot",
    11: "the client has no device that can receive the message",
    13: "the client's Viber version does not support this message",
    14: "the message is incompatible with the client's Viber version",
    15: "the bot account is not authorized",
    16: "in-chat replies are not allowed",
    17: "the bot account is not inline",
    18: "no public chat",
    19: "broadcast messages cannot be sent",
    20: "broadcasting is not allowed",
    21: "unsupported country",
    22: "payments are unsupported",
    23: "free messages exceeded",
    24: "no balance",
}


def _token(secrets: dict) -> str:
    token = secrets.get("auth_token")
    if not isinstance(token, str) or not token.strip():
        raise TransportError("The Viber auth token is missing.", permanent=True)
    return token.strip()


def call(
    secrets: dict, endpoint: str, payload: dict[str, Any], *, sends: bool = False
) -> dict[str, Any]:
    """POST to /pa/<endpoint>; return the body when status is 0, else raise TransportError.

    ``sends``: the call delivers a message, so a failure after the request was written
    is "delivery uncertain" (permanent), never retried into a duplicate.
    """
    token = _token(secrets)
    base = settings.OPENLINE_VIBER_API_URL.rstrip("/")
    try:
        response = httpx.post(
            f"{base}/pa/{endpoint}",
            json=payload,
            headers={AUTH_HEADER: token},
            timeout=float(settings.OPENLINE_MESSENGER_TIMEOUT),
        )
    except httpx.HTTPError as exc:
        if sends and isinstance(exc, AFTER_WRITE_ERRORS):
            raise delivery_uncertain() from None
        if isinstance(exc, httpx.TimeoutException):
            raise TransportError(f"Viber did not answer {endpoint} in time.") from None
        detail = (str(exc) or type(exc).__name__).replace(token, "<token>")
        raise TransportError(f"Viber is unreachable ({endpoint}): {detail}") from None
    return _result(response, endpoint)


def _result(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    code = response.status_code
    if code == 429 or code >= 500:
        retry = response.headers.get("retry-after", "")
        retry_after = float(retry) if retry.strip().isdigit() else None
        raise TransportError(
            f"Viber answered {endpoint} with HTTP {code}.", retry_after=retry_after
        )
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise TransportError(
            f"Viber answered {endpoint} with HTTP {code} and no JSON object.",
            permanent=400 <= code < 500,
        )
    status = data.get("status")
    if status == 0 and not isinstance(status, bool) and code < 300:
        return data
    raise error_for(status, str(data.get("status_message") or ""), endpoint)


def error_for(status: Any, status_message: str, endpoint: str) -> TransportError:
    """Map a non-zero Viber status to a TransportError saying whether a retry can help."""
    label = f"{status_message} ({status})" if status_message else f"status {status}"
    if status == TOO_MANY_REQUESTS:
        return TransportError(
            f"Viber rate limit on {endpoint}: {label}", retry_after=RATE_LIMIT_RETRY_AFTER
        )
    if isinstance(status, int) and status in PERMANENT:
        reason = PERMANENT[status]
        return TransportError(f"Viber refused {endpoint}: {reason} [{label}]", permanent=True)
    # Unknown codes are Viber's "general error": worth another try.
    return TransportError(f"Viber error on {endpoint}: {label}")
