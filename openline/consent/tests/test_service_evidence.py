"""The consent services themselves, not only the API, own the evidence keys they compute."""

from __future__ import annotations

from openline.consent.models import ConsentOrigin, ConsentRecord, SourceType
from openline.consent.services import withdraw_consent


def test_record_consent_overrides_caller_evidence_for_the_keys_it_computes(give, channel):
    record = give(
        language="en",
        evidence={
            "requested_language": "forged",
            "channel_consent_settings": {"agreement_id": -1},
            "form": "checkout",
        },
    )
    stored = ConsentRecord.objects.get(pk=record.pk).evidence
    assert stored["requested_language"] == "en"
    assert stored["channel_consent_settings"]["agreement_id"] == channel.agreement_id
    assert stored["form"] == "checkout"


def test_record_consent_without_a_channel_drops_caller_channel_settings(give):
    record = give(channel=None, evidence={"channel_consent_settings": {"forged": True}})
    assert "channel_consent_settings" not in ConsentRecord.objects.get(pk=record.pk).evidence


def test_withdraw_consent_always_names_the_record_it_withdraws(give, visitor, agreement):
    given = give()
    withdrawn = withdraw_consent(
        visitor=visitor,
        agreement=agreement,
        origin=ConsentOrigin.API,
        source_type=SourceType.API,
        evidence={"withdraws_record": "00000000-0000-0000-0000-000000000000", "reason": "phone"},
    )
    stored = ConsentRecord.objects.get(pk=withdrawn.pk).evidence
    assert stored["withdraws_record"] == str(given.uuid)
    assert stored["reason"] == "phone"
