"""Evidence sent through the API never overrides what the server itself vouches for."""

from __future__ import annotations

import json

import pytest

from openline.consent.models import ConsentRecord


def _post(client, path: str, body: dict):
    return client.post(path, data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize(
    "key", ["recorded_by", "channel_consent_settings", "requested_language", "withdraws_record"]
)
def test_record_evidence_naming_a_server_field_is_refused_with_422(
    admin_client, visitor, agreement, key
):
    response = _post(
        admin_client,
        "/api/v1/consents/records",
        {
            "visitor_id": str(visitor.public_id),
            "consent_id": agreement.pk,
            "evidence": {key: "forged by the caller", "form": "checkout"},
        },
    )
    assert response.status_code == 422, response.content
    assert f"evidence.{key}" in response.json()["detail"]
    assert not ConsentRecord.objects.exists()


def test_withdrawal_evidence_cannot_point_at_another_record(admin_client, visitor, agreement, give):
    given = give()
    response = _post(
        admin_client,
        "/api/v1/consents/withdrawals",
        {
            "visitor_id": str(visitor.public_id),
            "consent_id": agreement.pk,
            "evidence": {"withdraws_record": "00000000-0000-0000-0000-000000000000"},
        },
    )
    assert response.status_code == 422, response.content
    assert "evidence.withdraws_record" in response.json()["detail"]
    assert list(ConsentRecord.objects.values_list("pk", flat=True)) == [given.pk]


def test_server_fields_are_the_servers_and_client_keys_are_kept(
    admin_client, administrator, visitor, agreement, channel
):
    response = _post(
        admin_client,
        "/api/v1/consents/records",
        {
            "visitor_id": str(visitor.public_id),
            "consent_id": agreement.pk,
            "language": "en",
            "evidence": {"form": "checkout", "campaign": {"id": 7}},
        },
    )
    assert response.status_code == 201, response.content
    evidence = ConsentRecord.objects.get().evidence
    assert evidence["recorded_by"] == str(administrator)
    assert evidence["requested_language"] == "en"
    assert evidence["channel_consent_settings"]["agreement_id"] == channel.agreement_id
    assert evidence["form"] == "checkout" and evidence["campaign"] == {"id": 7}
    withdrawn = _post(
        admin_client,
        "/api/v1/consents/withdrawals",
        {
            "visitor_id": str(visitor.public_id),
            "consent_id": agreement.pk,
            "evidence": {"reason": "asked by phone"},
        },
    )
    assert withdrawn.status_code == 201, withdrawn.content
    record = ConsentRecord.objects.order_by("-id").first()
    assert record.evidence["reason"] == "asked by phone"
    assert record.evidence["recorded_by"] == str(administrator)
    assert record.evidence["withdraws_record"] == str(ConsentRecord.objects.order_by("id")[0].uuid)
