"""Consent records: what a record holds, immutability in the ORM, states and withdrawal."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from openline.consent import services
from openline.consent.models import (
    AppendOnlyError,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
    SourceType,
)


def test_record_keeps_the_exact_text_hash_language_and_channel_settings(give, channel, agreement):
    record = give()
    text = agreement.current_version.texts.get(language="en")
    assert record.text_sha256 == text.sha256 and record.language == "en"
    assert record.evidence["channel_consent_settings"] == {
        "consent_enabled": True,
        "agreement_id": agreement.pk,
        "agreement_name": agreement.name,
        "messenger_consent_mode": "warning",
        "messenger_warning_text": "",
        "withdraw_keywords": ["/stop", "withdraw consent"],
        "unconfirmed_retention_days": None,
    }
    assert record.ip == "203.0.113.7" and record.ip_missing_reason == ""


def test_messenger_records_store_no_ip_and_say_why(give):
    record = give(ip="", origin=ConsentOrigin.TELEGRAM, method="continued_chatting")
    assert record.ip is None
    assert "does not tell" in record.ip_missing_reason


def test_record_label_holds_no_personal_data_and_erasure_shows_deleted_client(give, visitor):
    record = give()
    assert "Vera" not in record.visitor_label
    assert record.user_display == "Vera Visitor"
    visitor.erased_at = timezone.now()
    visitor.name = ""
    visitor.save()
    again = ConsentRecord.objects.get(pk=record.pk)
    assert again.user_display.startswith("Deleted client ")
    assert again.visitor_label == record.visitor_label


def test_the_orm_refuses_to_update_or_delete_a_record(give):
    record = give()
    record.address = "https://evil.example/"
    with pytest.raises(AppendOnlyError):
        record.save()
    with pytest.raises(AppendOnlyError):
        record.delete()
    with pytest.raises(AppendOnlyError):
        ConsentRecord.objects.filter(pk=record.pk).update(address="x")
    with pytest.raises(AppendOnlyError):
        ConsentRecord.objects.filter(pk=record.pk).delete()
    assert ConsentRecord.objects.get(pk=record.pk).address == "https://example.com/pricing"


def test_current_state_is_given_then_withdrawn_then_given_again(give, visitor, agreement):
    assert services.state_of(visitor=visitor, agreement=agreement) == "none"
    assert services.current_state(visitor=visitor, agreement=agreement) is None
    given = give()
    assert services.state_of(visitor=visitor, agreement=agreement) == ConsentState.GIVEN
    withdrawn = services.withdraw_consent(
        visitor=visitor,
        agreement=agreement,
        origin=ConsentOrigin.LIVECHAT,
        source_type=SourceType.WEBSITE,
        address="https://example.com/chat",
        ip="203.0.113.7",
    )
    assert withdrawn.state == ConsentState.WITHDRAWN and withdrawn.method == "withdrawn_by_client"
    assert withdrawn.version_id == given.version_id and withdrawn.evidence[
        "withdraws_record"
    ] == str(given.uuid)
    assert services.state_of(visitor=visitor, agreement=agreement) == ConsentState.WITHDRAWN
    assert (
        ConsentRecord.objects.filter(visitor=visitor).count() == 2
    )  # the given record is still there
    give()
    assert services.state_of(visitor=visitor, agreement=agreement) == ConsentState.GIVEN


def test_withdrawing_without_a_given_consent_is_refused(visitor, agreement):
    with pytest.raises(ValidationError):
        services.withdraw_consent(
            visitor=visitor,
            agreement=agreement,
            origin=ConsentOrigin.LIVECHAT,
            source_type=SourceType.WEBSITE,
        )
    assert not ConsentRecord.objects.exists()


def test_bad_values_are_refused_before_anything_is_stored(give):
    with pytest.raises(ValueError):
        give(state="maybe")
    with pytest.raises(ValidationError):
        give(ip="999.1.1.1")
    assert not ConsentRecord.objects.exists()


def test_recording_schedules_sealing_after_commit(give, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        give()
    assert len(callbacks) == 1
