"""The events Openline sends to webhook endpoints, and what each carries.

Payloads name objects by stable ids (record uuid, conversation id, message id, item id) and
carry as little personal data as the event needs: no IP address, page URL, user agent, name,
phone or email. ``message.*`` events carry the message text (that is their point); an
integrator who must not receive it does not subscribe to them. Secrets are never included.
"""

from __future__ import annotations

import datetime as dt

CONSENT_GIVEN = "consent.given"
CONSENT_WITHDRAWN = "consent.withdrawn"
CONVERSATION_STARTED = "conversation.started"
CONVERSATION_CLOSED = "conversation.closed"
MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
CRM_ITEM_CREATED = "crm.item.created"
CRM_ITEM_DELETED = "crm.item.deleted"
REGISTRY_CHECKPOINT = "registry.checkpoint"

EVENT_TYPES: dict[str, str] = {
    CONSENT_GIVEN: "A client gave consent (a new registry record).",
    CONSENT_WITHDRAWN: "A client withdrew consent (a new registry record).",
    CONVERSATION_STARTED: "A conversation was started (live chat or messenger).",
    CONVERSATION_CLOSED: "A conversation was closed.",
    MESSAGE_RECEIVED: "A client's message was received.",
    MESSAGE_SENT: "An operator's reply or an automatic message was sent to a client.",
    CRM_ITEM_CREATED: "A lead or contact was created in the CRM.",
    CRM_ITEM_DELETED: "A lead or contact and its client's data were deleted.",
    REGISTRY_CHECKPOINT: "The consent registry issued a signed checkpoint.",
}


def iso(value: dt.datetime | None) -> str | None:
    """Format a time as ISO 8601 in UTC with a Z, as every payload does."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def consent_data(record) -> tuple[str, dict, str]:
    """Return (event type, data, order key) for a new consent record."""
    event = CONSENT_GIVEN if record.state == "given" else CONSENT_WITHDRAWN
    data = {
        "record_id": str(record.uuid),
        "agreement_id": record.agreement_id,
        "version": record.version.number,
        "state": record.state,
        "method": record.method,
        "origin": record.origin,
        "source_type": record.source_type,
        "channel_id": record.channel_id,
        "conversation_id": record.conversation_id,
        "visitor_id": str(record.visitor.public_id),
        "created_at": iso(record.created_at),
    }
    return event, data, f"visitor:{record.visitor_id}"


def conversation_data(conversation) -> dict:
    return {
        "conversation_id": conversation.pk,
        "channel_id": conversation.channel_id,
        "origin": conversation.origin,
        "status": conversation.status,
        "visitor_id": str(conversation.visitor.public_id),
        "started_at": iso(conversation.started_at),
        "closed_at": iso(conversation.closed_at),
        "closed_reason": conversation.closed_reason,
    }


def message_data(message, conversation) -> tuple[str, dict]:
    event = MESSAGE_RECEIVED if message.sender == "visitor" else MESSAGE_SENT
    data = {
        "message_id": message.pk,
        "conversation_id": conversation.pk,
        "channel_id": conversation.channel_id,
        "origin": conversation.origin,
        "sender": message.sender,
        "author_id": message.author_id,
        "text": message.text,
        "created_at": iso(message.created_at),
    }
    return event, data


def crm_item_data(item) -> dict:
    return {
        "item_id": item.pk,
        "kind": item.kind,
        "source_channel_id": item.source_channel_id,
        "created_at": iso(item.created_at),
    }


def checkpoint_data(checkpoint) -> dict:
    return {
        "batch_number": checkpoint.batch_number,
        "batch_hash": checkpoint.batch_hash,
        "merkle_root": checkpoint.merkle_root,
        "record_count": checkpoint.record_count,
        "last_record_id": checkpoint.last_record_id,
        "issued_at": iso(checkpoint.issued_at),
        "kid": checkpoint.kid,
        "jws": checkpoint.jws,
    }
