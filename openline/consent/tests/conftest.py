"""Fixtures of the consent registry tests: visitors and a quick way to record consent."""

from __future__ import annotations

import pytest

from openline.consent.models import ConsentMethod, ConsentOrigin, ConsentState, SourceType
from openline.consent.services import record_consent
from openline.conversations.models import Visitor
from openline.openchannels.services import consent_settings


@pytest.fixture
def visitor(channel):
    """Vera, a live chat visitor of the Website channel."""
    return Visitor.objects.create(
        origin="livechat",
        channel=channel,
        name="Vera Visitor",
        email="vera@example.com",
        language="en",
    )


@pytest.fixture
def give(channel, visitor):
    """Record a given consent for a visitor (Vera by default) through the service."""

    def give(*, who=None, agreement=None, ip="203.0.113.7", origin=ConsentOrigin.LIVECHAT, **extra):
        agreement = agreement or channel.agreement
        params = dict(
            visitor=who or visitor,
            version=agreement.current_version,
            language="en",
            state=ConsentState.GIVEN,
            method=ConsentMethod.CLICKED_ACCEPT,
            origin=origin,
            source_type=SourceType.WEBSITE,
            source_label="example.com",
            address="https://example.com/pricing",
            ip=ip,
            user_agent="Mozilla/5.0 (Test)",
            channel=channel,
        )
        params.update(extra)
        if "channel_settings" not in extra and params["channel"] is not None:
            # What every caller that names a channel hands the registry (it reads no channels).
            params["channel_settings"] = consent_settings(params["channel"])
        return record_consent(**params)

    return give
