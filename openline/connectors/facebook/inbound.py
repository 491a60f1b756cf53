"""Messenger webhooks: the GET handshake, the signature check and page messaging events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from openline.connectors import meta
from openline.connectors.base import (
    ClientIdentity,
    HandshakeReply,
    InboundEvent,
    InboundMessage,
    RawRequest,
    StatusEvent,
)
from openline.connectors.meta import json_list, json_object, json_text

OBJECT = "page"


def handshake(request: RawRequest, *, secrets: dict, config: dict) -> HandshakeReply | None:
    """Answer the hub.challenge GET with the connector's verify token."""
    return meta.handshake(request, verify_token=str(secrets.get("verify_token") or ""))


def verify(request: RawRequest, *, secrets: dict, config: dict) -> None:
    """Check X-Hub-Signature-256 over the raw body with the app secret."""
    meta.verify_signature(request, app_secret=str(secrets.get("app_secret") or ""))


def parse(request: RawRequest, *, config: dict) -> list[InboundEvent]:
    """Turn a verified page webhook into messages and delivery/read marks; ValueError if malformed."""
    payload = meta.load_json(request.body)
    if not isinstance(payload, dict) or payload.get("object") != OBJECT:
        raise ValueError("not a page webhook")
    own_page = str(config.get("page_id") or "")
    events: list[InboundEvent] = []
    for entry in json_list(payload, "entry"):
        entry = json_object(entry, "entry")
        # One app may serve several pages: keep only this connector's.
        if own_page and str(entry.get("id", "")) != own_page:
            continue
        for item in json_list(entry, "messaging"):
            events.extend(_messaging(json_object(item, "messaging"), own_page))
    return events


def _id(party: Any, what: str) -> str:
    value = json_object(party, what).get("id")
    # Graph sends ids as strings; accept an integer but never a float (precision).
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    value = json_text(value, f"{what} id")
    if not value:
        raise ValueError(f"{what} without id")
    return value


def _messaging(item: dict[str, Any], own_page: str) -> list[InboundEvent]:
    sender = _id(item.get("sender"), "sender")
    sent_at = meta.timestamp(item.get("timestamp"), milliseconds=True)
    if "message" in item:
        message = json_object(item["message"], "message")
        # Echoes are the page's own messages (ours or an agent's in Page Inbox): not the client.
        if message.get("is_echo") is True or (own_page and sender == own_page):
            return []
        return [_message(message, sender, sent_at)]
    if "postback" in item:
        return [_postback(json_object(item["postback"], "postback"), sender, sent_at)]
    if "delivery" in item:
        return _delivery(json_object(item["delivery"], "delivery"), sender, sent_at)
    if "read" in item:
        read = json_object(item["read"], "read")
        watermark = _watermark(read)
        return [
            StatusEvent(
                key=f"read:{sender}:{read['watermark']}",
                platform_message_id="",
                state="read",
                client_external_id=sender,
                at=sent_at,
                watermark=watermark,
            )
        ]
    return []  # optins, referrals, reactions...: nothing Openline handles


def _message(message: dict[str, Any], sender: str, sent_at: datetime | None) -> InboundMessage:
    mid = json_text(message.get("mid"), "mid")
    if not mid:
        raise ValueError("message without mid")
    text = json_text(message.get("text", ""), "text")
    button = ""
    if "quick_reply" in message:
        button = json_text(
            json_object(message["quick_reply"], "quick_reply").get("payload", ""), "payload"
        )
    labels = []
    for attachment in json_list(message, "attachments"):
        kind = json_object(attachment, "attachment").get("type")
        labels.append(f"[{kind if isinstance(kind, str) and kind.isidentifier() else 'file'}]")
    if labels:
        text = " ".join([*labels, text]).strip()
    return InboundMessage(
        key=mid,
        client=ClientIdentity(external_id=sender),
        text=text,
        sent_at=sent_at,
        button=button,
        platform_message_id=mid,
    )


def _postback(postback: dict[str, Any], sender: str, sent_at: datetime | None) -> InboundMessage:
    title = json_text(postback.get("title", ""), "postback title")
    payload = json_text(postback.get("payload", ""), "postback payload")
    mid = postback.get("mid")
    # Older postbacks carry no mid: the sender and the exact time identify the tap.
    if isinstance(mid, str) and mid:
        key = mid
    elif sent_at is not None:
        key = f"postback:{sender}:{int(sent_at.timestamp() * 1000)}"
    else:
        raise ValueError("postback without mid or timestamp")
    return InboundMessage(
        key=key,
        client=ClientIdentity(external_id=sender),
        text=title or payload,
        sent_at=sent_at,
        button=payload,
        platform_message_id=mid if isinstance(mid, str) else "",
    )


def _watermark(mark: dict[str, Any]) -> datetime:
    watermark = meta.timestamp(mark.get("watermark"), milliseconds=True)
    if watermark is None:
        raise ValueError("mark without watermark")
    return watermark


def _delivery(delivery: dict[str, Any], sender: str, at: datetime | None) -> list[InboundEvent]:
    """Delivered marks: one per listed mid, plus the watermark covering everything before it."""
    events: list[InboundEvent] = []
    for mid in json_list(delivery, "mids"):
        mid = json_text(mid, "mid")
        if mid:
            events.append(
                StatusEvent(
                    key=f"{mid}:delivered",
                    platform_message_id=mid,
                    state="delivered",
                    client_external_id=sender,
                    at=at,
                )
            )
    if delivery.get("watermark") not in (None, ""):
        events.append(
            StatusEvent(
                key=f"delivered:{sender}:{delivery['watermark']}",
                platform_message_id="",
                state="delivered",
                client_external_id=sender,
                at=at,
                watermark=_watermark(delivery),
            )
        )
    return events
