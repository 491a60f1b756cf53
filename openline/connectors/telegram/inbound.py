"""Telegram webhooks and long polling: check the secret header, turn Updates into events."""

from __future__ import annotations

import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from openline.connectors.base import (
    ClientEvent,
    ClientIdentity,
    InboundEvent,
    InboundMessage,
    RawRequest,
    TransportError,
    VerificationError,
)

from . import client

logger = logging.getLogger(__name__)

SECRET_HEADER = "x-telegram-bot-api-secret-token"

# Message kinds without text: the operator sees a placeholder (and the caption, if any).
MEDIA_KINDS = (
    "photo",
    "video",
    "animation",
    "video_note",
    "voice",
    "audio",
    "document",
    "sticker",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
    "story",
)

# Fields any message may carry besides its content: they never name a service message.
MESSAGE_METADATA = frozenset(
    {
        "message_id", "message_thread_id", "from", "sender_chat", "chat", "date", "edit_date",
        "business_connection_id", "sender_business_bot", "sender_boost_count", "via_bot",
        "reply_to_message", "external_reply", "quote", "reply_to_story", "forward_origin",
        "is_topic_message", "is_automatic_forward", "has_protected_content", "is_from_offline",
        "media_group_id", "author_signature", "entities", "caption_entities", "reply_markup",
        "link_preview_options", "effect_id", "has_media_spoiler", "show_caption_above_media",
    }
)  # fmt: skip


def verify(request: RawRequest, *, secrets: dict) -> None:
    """Raise VerificationError unless the secret-token header matches (constant time)."""
    expected = secrets.get("secret_token")
    if not isinstance(expected, str) or not expected:
        raise VerificationError("No webhook secret is configured for this bot.", status=403)
    given = request.headers.get(SECRET_HEADER)
    if not given:
        raise VerificationError("The Telegram secret-token header is missing.", status=401)
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise VerificationError("The Telegram secret-token header does not match.", status=403)


def parse(request: RawRequest, *, config: dict | None = None) -> list[InboundEvent]:
    """Turn one webhook body (one Update) into typed events; ValueError when malformed."""
    try:
        update = json.loads(request.body)
    except RecursionError:
        raise ValueError("The update is nested too deeply.") from None
    return [parse_update(update, bot_id=bot_id_of(config))]


def bot_id_of(config: dict | None) -> str:
    """Return config["bot_id"] (stored from getMe at connect) as text, or "" when unknown."""
    value = (config or {}).get("bot_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return ""


def event_key(update_id: int, bot_id: str = "") -> str:
    """Key an update by bot: update_ids are per bot, so another bot's may repeat them."""
    return f"{bot_id}:{update_id}" if bot_id else str(update_id)


def parse_update(update: Any, *, bot_id: str = "") -> InboundEvent:
    """Turn one decoded Update into a typed event keyed by "<bot_id>:<update_id>"."""
    update = _obj(update, "update")
    key = event_key(_int(update.get("update_id"), "update_id"), bot_id)
    if "message" in update:
        return _message(key, _obj(update["message"], "message"))
    if "edited_message" in update:
        # Edits are acknowledged and ignored: Openline keeps what was said, and treating the
        # edit as a new message would show the operator the same text twice.
        _obj(update["edited_message"], "edited_message")
        return _ignored(key)
    if "callback_query" in update:
        return _callback(key, _obj(update["callback_query"], "callback_query"))
    if "my_chat_member" in update:
        return _membership(key, _obj(update["my_chat_member"], "my_chat_member"))
    return _ignored(key)


def poll(
    *, secrets: dict, offset: int, timeout: int, config: dict | None = None
) -> tuple[list[InboundEvent], int]:
    """Long-poll getUpdates once; return the events and the offset for the next call."""
    bot_id = bot_id_of(config)
    # The HTTP timeout must outlast the long poll itself, or every empty poll "fails".
    limit = float(timeout) + float(settings.OPENLINE_MESSENGER_TIMEOUT)
    payload = {"offset": offset, "timeout": timeout, "allowed_updates": client.ALLOWED_UPDATES}
    result = client.call(secrets, "getUpdates", payload, timeout=limit)
    if not isinstance(result, list):
        raise TransportError("Telegram's getUpdates answer holds no list of updates.")
    events: list[InboundEvent] = []
    next_offset = offset
    for update in result:
        update_id = update.get("update_id") if isinstance(update, dict) else None
        if isinstance(update_id, int) and not isinstance(update_id, bool):
            next_offset = max(next_offset, update_id + 1)
        try:
            events.append(parse_update(update, bot_id=bot_id))
        except ValueError as exc:
            # One bad update must not stall the bot forever: acknowledge it by moving past it.
            logger.warning("Skipping a malformed Telegram update: %s", exc)
            if isinstance(update_id, int) and not isinstance(update_id, bool):
                events.append(_ignored(event_key(update_id, bot_id)))
    return events, next_offset


def _message(key: str, message: dict) -> InboundEvent:
    chat = _obj(message.get("chat"), "message.chat")
    sender = message.get("from")
    if chat.get("type") != "private" or (isinstance(sender, dict) and sender.get("is_bot")):
        # Groups and channels are not client conversations.
        return _ignored(key)
    identity = _identity(chat, sender)
    text, content = _text(message)
    return InboundMessage(
        key=key,
        client=identity,
        text=text,
        sent_at=_date(message.get("date")),
        platform_message_id=str(_int(message.get("message_id"), "message_id")),
        content=content,
    )


def _callback(key: str, query: dict) -> InboundEvent:
    query_id = _str(query.get("id"), "callback_query.id")
    sender = _obj(query.get("from"), "callback_query.from")
    data = query.get("data")
    message = query.get("message")
    chat = sender
    if message is not None:
        message = _obj(message, "callback_query.message")
        if "chat" in message:
            chat = _obj(message["chat"], "callback_query.message.chat")
            if chat.get("type", "private") != "private":
                return _ignored(key)
    if not isinstance(data, str) or not data:
        return _ignored(key)  # game buttons carry no data
    return InboundMessage(
        key=key,
        client=_identity(chat, sender),
        text=_label(message, data) or data,
        button=data,
        # The caller answers the query with PLATFORM.acknowledge(event, secrets=...).
        platform_message_id=query_id,
    )


def _membership(key: str, update: dict) -> InboundEvent:
    chat = _obj(update.get("chat"), "my_chat_member.chat")
    new = _obj(update.get("new_chat_member"), "my_chat_member.new_chat_member")
    if chat.get("type") != "private":
        return _ignored(key)
    status = new.get("status")
    event = {"kicked": "unsubscribed", "member": "subscribed"}.get(str(status), "ignored")
    return ClientEvent(key=key, client=_identity(chat, update.get("from")), event=event)


def _ignored(key: str) -> ClientEvent:
    return ClientEvent(key=key, client=ClientIdentity(external_id=""), event="ignored")


def _identity(chat: dict, sender: Any) -> ClientIdentity:
    user = sender if isinstance(sender, dict) else chat
    first = _opt_str(user.get("first_name"))
    last = _opt_str(user.get("last_name"))
    return ClientIdentity(
        external_id=str(_int(chat.get("id"), "chat.id")),
        name=" ".join(part for part in (first, last) if part),
        language=_opt_str(user.get("language_code")),
        username=_opt_str(user.get("username")),
    )


def _text(message: dict) -> tuple[str, bool]:
    """Return (text for the operator, whether the client wrote something)."""
    text = message.get("text")
    if isinstance(text, str) and text:
        return _clean(text), True
    caption = _opt_str(message.get("caption"))
    for kind in MEDIA_KINDS:
        if kind in message:
            return f"[{kind}] {caption}".strip(), True
    if caption:
        return f"[message] {caption}", True
    # A service message (auto-delete timer set, message pinned, chat members...): no content.
    return f"[{_service_kind(message)}]", False


def _service_kind(message: dict) -> str:
    """Name the service field of a message without text, caption or media ("service")."""
    for name in message:
        if isinstance(name, str) and name not in MESSAGE_METADATA and name.isidentifier():
            return name[:64]
    return "service"


def _label(message: Any, data: str) -> str:
    """Find the pressed button's label in the inline keyboard it was attached to."""
    if not isinstance(message, dict):
        return ""
    markup = message.get("reply_markup")
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    for row in rows if isinstance(rows, list) else []:
        for button in row if isinstance(row, list) else []:
            if isinstance(button, dict) and button.get("callback_data") == data:
                return _opt_str(button.get("text"))
    return ""


def _date(value: Any) -> datetime | None:
    if value is None:
        return None
    seconds = _int(value, "date")
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("date is out of range") from None


def _obj(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is not an integer")
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
