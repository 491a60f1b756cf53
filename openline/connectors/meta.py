"""What WhatsApp (Cloud API) and Facebook Messenger share: both are Meta Graph API products.

The GET ``hub.challenge`` handshake, the ``X-Hub-Signature-256`` check over the raw body,
Graph calls (base URL and timeout read from settings at call time) and the mapping of Graph
error answers to ``TransportError``. Tokens travel in the Authorization header, never in a
URL, so they cannot end up in access or httpx logs, and never in an exception message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
from django.conf import settings

from openline.connectors.base import (
    AFTER_WRITE_ERRORS,
    HandshakeReply,
    RawRequest,
    TransportError,
    VerificationError,
    delivery_uncertain,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-hub-signature-256"
# Graph rate-limit errors carry no retry hint; Meta's guidance is to back off and retry later.
RATE_LIMIT_RETRY_AFTER = 30.0
WINDOW_CLOSED = "The 24-hour window to answer this client has closed"
INVALID_TOKEN = "The access token is invalid or has expired: reconnect with a new token"

# Graph, WhatsApp and Messenger throttling codes: app (4), user (17), page (32), per-hour
# calls (613), business use case (80004, 80006 Messenger, 80007 WhatsApp), WhatsApp
# throughput (130429), spam rate (131048) and pair rate (131056).
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80004, 80006, 80007, 130429, 131048, 131056})
# Graph "unknown"/"service" errors, Messenger "temporary send message failure" (1200) and
# WhatsApp "something went wrong"/"service unavailable".
TEMPORARY_CODES = frozenset({1, 2, 1200, 131000, 131016, 133004})
# WhatsApp re-engagement: more than 24 hours since the customer's last message.
WHATSAPP_WINDOW_CODES = frozenset({131047})
# Messenger: code 10 with subcode 2018278 "This message is sent outside of allowed window"
# (other code-10 subcodes word it the same way; 551 "person isn't available" is not this).
MESSENGER_WINDOW_SUBCODES = frozenset({2018278})
INVALID_TOKEN_CODES = frozenset({190})


def handshake(request: RawRequest, *, verify_token: str) -> HandshakeReply | None:
    """Answer Meta's GET subscription check, or None when the request is not one."""
    if request.method.upper() != "GET" or "hub.mode" not in request.query:
        return None
    given = request.query.get("hub.verify_token", "")
    expected = verify_token or ""
    token_ok = bool(expected) and hmac.compare_digest(
        given.encode("utf-8"), expected.encode("utf-8")
    )
    if request.query.get("hub.mode") != "subscribe" or not token_ok:
        return HandshakeReply(403, "Verification token mismatch")
    challenge = request.query.get("hub.challenge", "")
    if not challenge:
        return HandshakeReply(400, "Missing hub.challenge")
    return HandshakeReply(200, challenge)


def verify_signature(request: RawRequest, *, app_secret: str) -> None:
    """Raise VerificationError unless X-Hub-Signature-256 signs the raw body with the app secret."""
    header = request.headers.get(SIGNATURE_HEADER, "").strip()
    if not header:
        raise VerificationError("Missing X-Hub-Signature-256 header", status=401)
    if not app_secret:
        raise VerificationError("No app secret is configured for this connector", status=403)
    scheme, _, given = header.partition("=")
    expected = hmac.new(app_secret.encode("utf-8"), request.body, hashlib.sha256).hexdigest()
    # compare_digest on ASCII bytes; a non-ASCII header simply does not match.
    given_bytes = given.strip().lower().encode("utf-8", "replace")
    if scheme.strip().lower() != "sha256" or not hmac.compare_digest(
        given_bytes, expected.encode("ascii")
    ):
        raise VerificationError("Invalid X-Hub-Signature-256 signature", status=403)


def graph_url(path: str) -> str:
    """Build a Graph API URL from the base URL configured now (tests point it elsewhere)."""
    return f"{settings.OPENLINE_GRAPH_API_URL.rstrip('/')}/{path.lstrip('/')}"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Remove every secret value from a text that may reach logs or the connector page."""
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text


def graph_call(
    method: str,
    path: str,
    *,
    token: str,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    sends: bool = False,
) -> dict[str, Any]:
    """Call the Graph API with a bearer token; return the JSON answer or raise TransportError.

    ``sends``: the call delivers a message, so a failure after the request was written
    is "delivery uncertain" (permanent), never retried into a duplicate.
    """
    if not token:
        raise TransportError("No access token is configured for this connector", permanent=True)
    try:
        response = httpx.request(
            method,
            graph_url(path),
            params=params,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=settings.OPENLINE_MESSENGER_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        if sends and isinstance(exc, AFTER_WRITE_ERRORS):
            raise delivery_uncertain() from None
        if isinstance(exc, httpx.TimeoutException):
            raise TransportError("The Graph API did not answer in time") from None
        raise TransportError(f"The Graph API is unreachable ({type(exc).__name__})") from None
    except ValueError:
        # e.g. a pasted token with non-ASCII characters cannot be a header; never echo it.
        raise TransportError(
            "The access token contains invalid characters", permanent=True
        ) from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400 or (isinstance(data, dict) and "error" in data):
        raise graph_error(response.status_code, data, headers=response.headers, secrets=(token,))
    if not isinstance(data, dict):
        raise TransportError(
            f"The Graph API answered HTTP {response.status_code} without a JSON object",
            permanent=response.status_code < 500,
        )
    return data


def _retry_after(headers: httpx.Headers | dict[str, str] | None) -> float:
    value = (headers or {}).get("retry-after", "")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return RATE_LIMIT_RETRY_AFTER
    return seconds if math.isfinite(seconds) and seconds > 0 else RATE_LIMIT_RETRY_AFTER


def graph_error(
    status: int,
    data: Any,
    *,
    headers: httpx.Headers | dict[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> TransportError:
    """Map a Graph error answer to a TransportError that says whether retrying can help."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return TransportError(
            f"The Graph API answered HTTP {status}",
            permanent=400 <= status < 500 and status not in (408, 429),
            retry_after=_retry_after(headers) if status == 429 else None,
        )
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    text = str(error.get("message") or "").strip()
    details = error.get("error_data")
    if isinstance(details, dict) and details.get("details"):
        text = f"{text} ({details['details']})" if text else str(details["details"])
    described = scrub(f"Graph error {code}: {text}" if code is not None else text, secrets)
    window = code == 10 and (
        subcode in MESSENGER_WINDOW_SUBCODES or "allowed window" in text.lower()
    )
    if code in WHATSAPP_WINDOW_CODES or window:
        return TransportError(WINDOW_CLOSED, permanent=True)
    if code in INVALID_TOKEN_CODES:
        return TransportError(INVALID_TOKEN, permanent=True)
    if code in RATE_LIMIT_CODES or status == 429:
        return TransportError(described, retry_after=_retry_after(headers))
    if code in TEMPORARY_CODES or error.get("is_transient") is True or status >= 500:
        return TransportError(described)
    return TransportError(described, permanent=True)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def load_json(body: bytes) -> Any:
    """Decode a webhook body; ValueError for anything that is not JSON."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def timestamp(value: Any, *, milliseconds: bool = False) -> datetime | None:
    """Turn a Graph timestamp (seconds as text, or Messenger's milliseconds) into UTC, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("timestamp is not a number")
    try:
        number = float(value)
        if milliseconds:
            number /= 1000
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("timestamp out of range") from None


def json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a JSON object, or ValueError naming ``what`` (a malformed webhook body)."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def json_list(container: dict[str, Any], key: str) -> list[Any]:
    """``container[key]`` as a JSON array (missing = empty), or ValueError."""
    value = container.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return value


def json_text(value: Any, what: str) -> str:
    """``value`` as a JSON string, or ValueError naming ``what``."""
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a string")
    return value
