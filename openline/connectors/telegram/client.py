"""Telegram Bot API calls over httpx, with error answers mapped to ``TransportError``.

The bot token is part of every URL path (``/bot<token>/<method>``), so nothing that may carry
the URL (httpx errors, httpx's own request log line) leaves this module unscrubbed.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
from django.conf import settings

from openline.connectors.base import AFTER_WRITE_ERRORS, TransportError, delivery_uncertain

logger = logging.getLogger(__name__)

# What Openline asks Telegram to deliver (webhook and getUpdates alike).
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]

_TOKEN_IN_TEXT = re.compile(r"bot\d+:[A-Za-z0-9_-]+")


def scrub(text: str, token: str = "") -> str:
    """Remove the bot token (and anything shaped like one) from ``text``."""
    if token:
        text = text.replace(token, "<token>")
    return _TOKEN_IN_TEXT.sub("bot<token>", text)


class _ScrubTokens(logging.Filter):
    """httpx logs every request URL at INFO; the Telegram URL path carries the bot token."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        return True


_httpx_logger = logging.getLogger("httpx")
if not any(isinstance(f, _ScrubTokens) for f in _httpx_logger.filters):
    _httpx_logger.addFilter(_ScrubTokens())


def _token(secrets: dict) -> str:
    token = secrets.get("bot_token")
    if not isinstance(token, str) or not token.strip():
        raise TransportError("The Telegram bot token is missing.", permanent=True)
    return token.strip()


def call(
    secrets: dict,
    method: str,
    payload: dict[str, Any],
    *,
    timeout: float | None = None,
    sends: bool = False,
) -> Any:
    """Call a Bot API method and return its ``result``, or raise TransportError.

    ``sends``: the call delivers a message, so a failure after the request was written
    is "delivery uncertain" (permanent), never retried into a duplicate.
    """
    token = _token(secrets)
    base = settings.OPENLINE_TELEGRAM_API_URL.rstrip("/")
    limit = float(settings.OPENLINE_MESSENGER_TIMEOUT) if timeout is None else timeout
    try:
        response = httpx.post(f"{base}/bot{token}/{method}", json=payload, timeout=limit)
    except httpx.HTTPError as exc:
        # "from None": the chained httpx error would carry the URL, i.e. the token.
        if sends and isinstance(exc, AFTER_WRITE_ERRORS):
            raise delivery_uncertain() from None
        if isinstance(exc, httpx.TimeoutException):
            raise TransportError(f"Telegram did not answer {method} in time.") from None
        detail = scrub(str(exc) or type(exc).__name__, token)
        raise TransportError(f"Telegram is unreachable ({method}): {detail}") from None
    return _result(response, method, token)


def _result(response: httpx.Response, method: str, token: str) -> Any:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        permanent = 400 <= response.status_code < 500 and response.status_code != 429
        raise TransportError(
            f"Telegram answered {method} with HTTP {response.status_code} and no JSON.",
            permanent=permanent,
        )
    if data.get("ok") is True and response.status_code < 300:
        return data.get("result")
    code = data.get("error_code")
    if not isinstance(code, int) or isinstance(code, bool):
        code = response.status_code
    description = scrub(str(data.get("description") or f"HTTP {code}"), token)
    raise error_for(code, description, data.get("parameters"), response.headers.get("retry-after"))


def error_for(code: int, description: str, parameters: Any, header: str | None) -> TransportError:
    """Map a Bot API error answer to a TransportError saying whether a retry can help."""
    retry_after = None
    if isinstance(parameters, dict):
        retry_after = _seconds(parameters.get("retry_after"))
    if retry_after is None and code == 429:
        retry_after = _seconds(header)
    if code == 429 or retry_after is not None:
        return TransportError(f"Telegram flood control: {description}", retry_after=retry_after)
    if code == 403 and "blocked" in description.lower():
        return TransportError("The client blocked the bot.", permanent=True)
    if code == 401:
        return TransportError("Telegram rejected the bot token.", permanent=True)
    if code == 409:
        # Another getUpdates consumer or a webhook is active: may clear up (lease handover).
        return TransportError(f"Telegram: {description}")
    if code >= 500 or code < 400:
        return TransportError(f"Telegram error {code}: {description}")
    # 400 chat not found / message too long, 403 kicked or deactivated, 404 bad token format.
    return TransportError(f"Telegram refused the request: {description}", permanent=True)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and value >= 0:
        return float(value)
    if isinstance(value, str) and value.strip().isdigit():
        return float(value.strip())
    return None


def answer_callback(secrets: dict, callback_query_id: str, *, text: str = "") -> None:
    """Stop the button's progress indicator (Telegram wants every callback query answered)."""
    payload: dict[str, Any] = {"callback_query_id": callback_query_id}
    if text:
        payload["text"] = text[:200]
    call(secrets, "answerCallbackQuery", payload)
