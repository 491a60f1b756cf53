"""The consent panel of a chat: what the client agreed to on this channel, kept after erasure.

Consent records are the company's proof and outlive the client's personal data: erasure
blanks the visitor's identity and deletes the messages, but the visitor row (the pseudonymous
reference every record points at) and the records stay. So the panel looks the records up by
that reference and keeps showing them once the client is "Deleted client …".
"""

from __future__ import annotations

from django.db.models import Q

from openline.consent.models import ConsentRecord, ConsentState


def _records(conversation) -> list[ConsentRecord]:
    channel = conversation.channel
    # The channel's agreement now, and whatever was recorded on this channel before its
    # agreement was changed or switched off: both are this client's proof here.
    where = Q(channel_id=channel.pk)
    if channel.agreement_id is not None:
        where |= Q(agreement_id=channel.agreement_id)
    return list(
        ConsentRecord.objects.filter(where, visitor_id=conversation.visitor_id)
        .select_related("version", "agreement")
        .order_by("-created_at", "-id")
    )


def consent_panel(conversation) -> dict:
    """Return the consent state and records of ``conversation``'s client on its channel.

    Keys: ``asked`` (the channel asks for consent), ``current`` (the record in force on the
    channel's agreement, else the newest, else None), ``records`` (newest first), ``state``
    ("given", "withdrawn" or "none") and ``erased`` (the client's data was deleted).
    """
    channel = conversation.channel
    records = _records(conversation)
    current = next((r for r in records if r.agreement_id == channel.agreement_id), None)
    if current is None and records:
        current = records[0]
    state = "none"
    if current is not None:
        state = "given" if current.state == ConsentState.GIVEN else "withdrawn"
    return {
        "asked": bool(channel.consent_enabled),
        "current": current,
        "records": records,
        "state": state,
        "erased": bool(conversation.visitor.erased_at),
    }
