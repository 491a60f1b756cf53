"""The registry imports no app above it: callers hand it channel settings, apps veto through hooks."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from openline.consent import services, signals
from openline.consent.models import AuditAction, AuditEvent, ConsentRecord


def test_record_stores_the_channel_settings_its_caller_hands_it(give, channel):
    settings_then = {"consent_enabled": True, "agreement_id": channel.agreement_id, "mode": "x"}
    record = give(channel_settings=settings_then)
    stored = ConsentRecord.objects.get(pk=record.pk).evidence
    assert stored["channel_consent_settings"] == settings_then


def test_channel_settings_without_a_channel_are_refused(give):
    with pytest.raises(ValueError, match="pass the channel"):
        give(channel=None, channel_settings={"consent_enabled": True})
    assert not ConsentRecord.objects.exists()


def test_a_withdrawal_is_recorded_on_the_channel_of_the_consent_withdrawn(give, visitor, channel):
    assert services.withdrawal_channel(visitor=visitor, agreement=channel.agreement) is None
    give()
    assert services.withdrawal_channel(visitor=visitor, agreement=channel.agreement) == channel


def test_an_app_refusing_deactivation_leaves_the_consent_active_and_unaudited(
    administrator, agreement
):
    other = services.create_agreement(
        actor=administrator, name="Unused", text="Text", allow_html=False
    )
    seen = []

    def veto(sender, *, agreement, actor, **kwargs):
        seen.append((agreement.pk, actor))
        raise ValidationError("Still needed by a test.")

    signals.agreement_deactivating.connect(veto, dispatch_uid="test-veto")
    try:
        with pytest.raises(ValidationError, match="Still needed by a test"):
            services.set_agreement_active(actor=administrator, agreement=other, is_active=False)
    finally:
        signals.agreement_deactivating.disconnect(dispatch_uid="test-veto")
    other.refresh_from_db()
    assert other.is_active is True
    assert seen == [(other.pk, administrator)]
    assert not AuditEvent.objects.filter(
        agreement=other, action=AuditAction.AGREEMENT_DEACTIVATED
    ).exists()
    # Without the veto the same call deactivates it (no Open Channel sends this consent).
    services.set_agreement_active(actor=administrator, agreement=other, is_active=False)
    other.refresh_from_db()
    assert other.is_active is False
