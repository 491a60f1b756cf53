"""Test data: visitors who accepted the channel's consent in live chat."""

from __future__ import annotations


def accept_livechat_consent(
    visitor,
    channel,
    *,
    address: str = "https://example.com/",
    ip: str = "203.0.113.7",
    with_settings: bool = True,
    **details,
):
    """Record ``visitor``'s "I accept" of ``channel``'s current consent, as the live chat does.

    ``with_settings`` stores the channel's consent settings of this moment with the record;
    ``details`` are further ``record_consent`` keywords (source_label, user_agent,
    conversation, evidence, ...).
    """
    from openline.consent.models import ConsentMethod, ConsentOrigin, ConsentState, SourceType
    from openline.consent.services import record_consent
    from openline.openchannels.services import consent_settings

    if with_settings:
        details["channel_settings"] = consent_settings(channel)
    return record_consent(
        visitor=visitor,
        version=channel.agreement.current_version,
        language="en",
        state=ConsentState.GIVEN,
        method=ConsentMethod.CLICKED_ACCEPT,
        origin=ConsentOrigin.LIVECHAT,
        source_type=SourceType.WEBSITE,
        address=address,
        ip=ip,
        channel=channel,
        **details,
    )


def given_livechat_record(channel, *, name: str = "Vera Visitor"):
    """Create a visitor and record their given consent on ``channel`` (live chat, from a page)."""
    from openline.conversations.models import Visitor

    visitor = Visitor.objects.create(origin="livechat", channel=channel, name=name)
    return accept_livechat_consent(visitor, channel)
