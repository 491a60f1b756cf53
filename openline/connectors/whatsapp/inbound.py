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
    for entry in _list(payload, "entry"):
        for change in _list(_dict(entry, "entry"), "changes"):
            value = _dict(_dict(change, "change").get("value", {}), "value")
            metadata = _dict(value.get("metadata", {}), "metadata")
            # One app may serve several numbers: keep only this connector's.
            if own_number and str(metadata.get("phone_number_id", "")) != own_number:
                continue
            names = _contact_names(value)
            for message in _list(value, "messages"):
                events.append(_message(_dict(message, "message"), names))
            for status in _list(value, "statuses"):
                event = _status(_dict(status, "status"))
                if event is not None:
                    events.append(event)
    return events


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def _list(container: dict[str, Any], key: str) -> list[Any]:
    value = container.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a string")
    return value


def _contact_names(value: dict[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in _list(value, "contacts"):
        contact = _dict(contact, "contact")
        profile = contact.get("profile", {})
        name = profile.get("name", "") if isinstance(profile, dict) else ""
        if isinstance(contact.get("wa_id"), str) and isinstance(name, str):
            names[contact["wa_id"]] = name
    return names


def _message(message: dict[str, Any], names: dict[str, str]) -> InboundMessage:
    wamid = _text(message.get("id"), "message id")
    sender = _text(message.get("from"), "message from")
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
        return _text(_dict(message.get("text"), "text").get("body", ""), "text body"), ""
    if kind == "interactive":
        interactive = _dict(message.get("interactive"), "interactive")
        for reply_kind in ("button_reply", "list_reply"):
            if reply_kind in interactive:
                reply = _dict(interactive[reply_kind], reply_kind)
                payload = _text(reply.get("id", ""), "reply id")
                return _text(reply.get("title", ""), "reply title") or payload, payload
        return "[interactive]", ""
    if kind == "button":
        # A quick-reply button of a template message.
        pressed = _dict(message.get("button"), "button")
        payload = _text(pressed.get("payload", ""), "button payload")
        return _text(pressed.get("text", ""), "button text") or payload, payload
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
    wamid = _text(status.get("id"), "status id")
    state = _text(status.get("status"), "status")
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
