"""Test data: a visitor who accepted the channel's consent in live chat."""

from __future__ import annotations


def given_livechat_record(channel, *, name: str = "Vera Visitor"):
    """Create a visitor and record their given consent on ``channel`` (live chat, from a page)."""
    from openline.consent.models import ConsentMethod, ConsentOrigin, ConsentState, SourceType
    from openline.consent.services import record_consent
    from openline.conversations.models import Visitor
    from openline.openchannels.services import consent_settings

    visitor = Visitor.objects.create(origin="livechat", channel=channel, name=name)
    return record_consent(
        visitor=visitor,
        version=channel.agreement.current_version,
        language="en",
        state=ConsentState.GIVEN,
        method=ConsentMethod.CLICKED_ACCEPT,
        origin=ConsentOrigin.LIVECHAT,
        source_type=SourceType.WEBSITE,
        address="https://example.com/",
        ip="203.0.113.7",
        channel=channel,
        channel_settings=consent_settings(channel),
    )
