"""WhatsApp webhooks: the GET handshake, the signature check and messages/statuses parsing."""

from __future__ import annotations

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

OBJECT = "whatsapp_business_account"
STATUSES = frozenset({"sent", "delivered", "read", "failed"})
# Message types the client did not write: shown to operators, never "the client wrote again".
NOT_CONTENT = frozenset({"reaction", "system", "unsupported", "edit", "edited", "deleted"})


def handshake(request: RawRequest, *, secrets: dict, config: dict) -> HandshakeReply | None:
    """Answer the hub.challenge GET with the connector's verify token."""
    return meta.handshake(request, verify_token=str(secrets.get("verify_token") or ""))


def verify(request: RawRequest, *, secrets: dict, config: dict) -> None:
    """Check X-Hub-Signature-256 over the raw body with the app secret."""
    meta.verify_signature(request, app_secret=str(secrets.get("app_secret") or ""))


def parse(request: RawRequest, *, config: dict) -> list[InboundEvent]:
    """Turn a verified webhook body into messages and delivery statuses; ValueError if malformed."""
    payload = meta.load_json(request.body)
    if not isinstance(payload, dict) or payload.get("object") != OBJECT:
        raise ValueError("not a WhatsApp Business Account webhook")
    own_number = str(config.get("phone_number_id") or "")
    events: list[InboundEvent] = []
    for entry in json_list(payload, "entry"):
        for change in json_list(json_object(entry, "entry"), "changes"):
            value = json_object(json_object(change, "change").get("value", {}), "value")
            metadata = json_object(value.get("metadata", {}), "metadata")
            # One app may serve several numbers: keep only this connector's.
            if own_number and str(metadata.get("phone_number_id", "")) != own_number:
                continue
            names = _contact_names(value)
            for message in json_list(value, "messages"):
                events.append(_message(json_object(message, "message"), names))
            for status in json_list(value, "statuses"):
                event = _status(json_object(status, "status"))
                if event is not None:
                    events.append(event)
    return events


def _contact_names(value: dict[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in json_list(value, "contacts"):
        contact = json_object(contact, "contact")
        profile = contact.get("profile", {})
        name = profile.get("name", "") if isinstance(profile, dict) else ""
        if isinstance(contact.get("wa_id"), str) and isinstance(name, str):
            names[contact["wa_id"]] = name
    return names


def _message(message: dict[str, Any], names: dict[str, str]) -> InboundMessage:
    wamid = json_text(message.get("id"), "message id")
    sender = json_text(message.get("from"), "message from")
    if not wamid or not sender:
        raise ValueError("message without id or sender")
    kind = message.get("type", "")
    text, button = _content(message, kind)
    return InboundMessage(
        key=wamid,
        client=ClientIdentity(external_id=sender, name=names.get(sender, ""), phone=sender),
        text=text,
        sent_at=meta.timestamp(message.get("timestamp")),
        button=button,
        platform_message_id=wamid,
        content=kind not in NOT_CONTENT,
    )


def _content(message: dict[str, Any], kind: Any) -> tuple[str, str]:
    """Return (text, button payload) for one message of any type."""
    if kind == "text":
        return json_text(json_object(message.get("text"), "text").get("body", ""), "text body"), ""
    if kind == "interactive":
        interactive = json_object(message.get("interactive"), "interactive")
        for reply_kind in ("button_reply", "list_reply"):
            if reply_kind in interactive:
                reply = json_object(interactive[reply_kind], reply_kind)
                payload = json_text(reply.get("id", ""), "reply id")
                return json_text(reply.get("title", ""), "reply title") or payload, payload
        return "[interactive]", ""
    if kind == "button":
        # A quick-reply button of a template message.
        pressed = json_object(message.get("button"), "button")
        payload = json_text(pressed.get("payload", ""), "button payload")
        return json_text(pressed.get("text", ""), "button text") or payload, payload
    label = kind if isinstance(kind, str) and kind.isidentifier() else "message"
    media = message.get(label)
    caption = media.get("caption", "") if isinstance(media, dict) else ""
    if kind in ("reaction", "system") and isinstance(media, dict):
        # The emoji of a reaction ("" when removed), the notice of a system message.
        caption = media.get("emoji" if kind == "reaction" else "body", "")
    if isinstance(caption, str) and caption:
        return f"[{label}] {caption}", ""
    return f"[{label}]", ""


def _status(status: dict[str, Any]) -> StatusEvent | None:
    wamid = json_text(status.get("id"), "status id")
    state = json_text(status.get("status"), "status")
    if not wamid:
        raise ValueError("status without id")
    if state not in STATUSES:
        return None  # e.g. "deleted" or "warning": nothing Openline tracks
    error = ""
    if state == "failed":
        error = _status_error(status)
    recipient = status.get("recipient_id", "")
    return StatusEvent(
        key=f"{wamid}:{state}",
        platform_message_id=wamid,
        state=state,
        client_external_id=recipient if isinstance(recipient, str) else "",
        error=error,
        at=meta.timestamp(status.get("timestamp")),
    )


def _status_error(status: dict[str, Any]) -> str:
    errors = status.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return "Delivery failed"
    if first.get("code") in meta.WHATSAPP_WINDOW_CODES:
        return meta.WINDOW_CLOSED
    title = first.get("title") or first.get("message") or "Delivery failed"
    return str(title)
