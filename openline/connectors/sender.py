"""Send one outbox item through its messenger: claim, split, send, record.

``claim`` moves the item from pending to sending in its own committed transaction, so of
two workers holding the same id only one sends. The platform is called outside any database
transaction; a worker that dies after claiming leaves the item "sending", and the reaper
marks it uncertain instead of sending it twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from openline.connectors.base import Button, Outgoing, TransportError
from openline.connectors.registry import platform_for
from openline.connectors.setup import scrub, stored_secrets
from openline.conversations import outbox
from openline.core.secrets import SecretsError
from openline.openchannels.models import ConnectionState, Connector

log = logging.getLogger(__name__)

# A later part of a split reply is retried here rather than by the outbox: a retry of the
# whole item would send the parts already delivered a second time.
PART_ATTEMPTS = 3
PART_MAX_WAIT = 30.0


@dataclass(frozen=True)
class SendOutcome:
    state: str  # "skipped" | "sent" | "failed"
    retry_at: datetime | None = None
    platform_message_id: str = ""


def utf16_length(text: str) -> int:
    """Count UTF-16 code units: Telegram measures its limits so, never fewer than characters."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` UTF-16 units, on word boundaries."""
    if limit <= 0 or utf16_length(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while utf16_length(rest) > limit:
        # The longest prefix that fits (code points outside the BMP count twice).
        units, end = 0, 0
        for end, char in enumerate(rest):  # noqa: B007 - ``end`` is used after the loop
            units += 2 if ord(char) > 0xFFFF else 1
            if units > limit:
                break
        end = max(end, 1)
        window = rest[:end]
        # Prefer a paragraph or line break, then any whitespace, in the second half.
        cut = -1
        for separator in ("\n\n", "\n", " ", "\t"):
            position = window.rfind(separator)
            if position >= len(window) // 2:
                cut = position
                break
        if cut <= 0:
            cut = end  # one long word: cut it hard rather than exceed the limit
        part = rest[:cut].rstrip()
        if part:
            parts.append(part)
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def _buttons(payload: dict) -> tuple[Button, ...]:
    return tuple(
        Button(id=str(b["id"]), title=str(b["title"])) for b in payload.get("buttons") or ()
    )


def _send_part(platform, outgoing: Outgoing, *, secrets: dict, config: dict) -> str:
    """Send a later part, waiting out short rate limits in place; re-raise otherwise."""
    for attempt in range(1, PART_ATTEMPTS + 1):
        try:
            return platform.send(outgoing, secrets=secrets, config=config)
        except TransportError as exc:
            wait = exc.retry_after if exc.retry_after is not None else float(attempt)
            if exc.permanent or attempt == PART_ATTEMPTS or wait > PART_MAX_WAIT:
                raise
            time.sleep(wait)
    raise AssertionError("unreachable")


def send_item(*, item_id: int) -> SendOutcome:
    """Send outbox item ``item_id`` if it is due and nobody else has claimed it."""
    item = outbox.claim(item_id=item_id)
    if item is None:
        return SendOutcome("skipped")
    connector = Connector.objects.filter(
        channel__conversations=item.conversation_id, kind=item.kind
    ).first()
    try:
        secrets = stored_secrets(connector) if connector is not None else {}
    except SecretsError as exc:
        return _fail(item, str(exc), permanent=True)
    if (
        connector is None
        or not secrets
        or not connector.is_enabled
        or connector.state == ConnectionState.NOT_CONNECTED
    ):
        # Disconnected while the item waited (credentials may linger on a disabled one): the
        # administrator switched the messenger off, so nothing goes out through it any more.
        return _fail(item, "The messenger is disconnected.", permanent=True)

    platform = platform_for(item.kind)
    config = dict(connector.config or {})
    payload = item.payload or {}
    parts = split_text(str(payload.get("text") or ""), platform.text_limit)
    buttons = _buttons(payload)
    first_id = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        outgoing = Outgoing(recipient=item.recipient, text=part, buttons=buttons if last else ())
        try:
            if index == 0:
                message_id = platform.send(outgoing, secrets=secrets, config=config)
            else:
                message_id = _send_part(platform, outgoing, secrets=secrets, config=config)
        except TransportError as exc:
            error = scrub(exc.message or "The platform refused the message.", secrets)
            if index == 0:
                return _fail(item, error, permanent=exc.permanent, retry_after=exc.retry_after)
            # Some parts are out already: never resend them; the operator sees what happened.
            return _fail(item, f"Sent {index} of {len(parts)} parts; then: {error}", permanent=True)
        except Exception as exc:  # noqa: BLE001 - a bug or network surprise: retry later
            log.warning("sending outbox item %s failed: %s", item.pk, type(exc).__name__)
            error = f"Could not reach the platform ({type(exc).__name__})."
            if index == 0:
                return _fail(item, error, permanent=False)
            return _fail(item, f"Sent {index} of {len(parts)} parts; then: {error}", permanent=True)
        if index == 0:
            first_id = str(message_id)
    outbox.record_sent(item=item, platform_message_id=first_id)
    return SendOutcome("sent", platform_message_id=first_id)


def _fail(item, error: str, *, permanent: bool, retry_after: float | None = None) -> SendOutcome:
    retry_at = outbox.record_failure(
        item=item, error=error[:300], permanent=permanent, retry_after=retry_after
    )
    return SendOutcome("failed", retry_at=retry_at)
