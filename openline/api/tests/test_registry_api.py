"""Verify registry and signed checkpoints over the API: administrators and auditors only."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from openline.accounts.api_tokens import create_token
from openline.consent import sealing, signing
from openline.consent.models import (
    Checkpoint,
    ConsentMethod,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
    SourceType,
    VerificationRun,
)
from openline.consent.runs import execute_run
from openline.consent.services import record_consent
from openline.consent.tests.test_verify_console import backdate, run_worker_once
from openline.conversations.models import Visitor
from openline.openchannels.services import consent_settings

VERIFY = "/api/v1/consents/verify"
CHECKPOINTS = "/api/v1/consents/checkpoints"


def _give(channel, n: int) -> list[ConsentRecord]:
    visitor = Visitor.objects.create(origin="livechat", channel=channel, name="Vera")
    return [
        record_consent(
            visitor=visitor,
            version=channel.agreement.current_version,
            language="en",
            state=ConsentState.GIVEN,
            method=ConsentMethod.CLICKED_ACCEPT,
            origin=ConsentOrigin.LIVECHAT,
            source_type=SourceType.WEBSITE,
            source_id=str(i),
            source_label="example.com",
            address="https://example.com/pricing",
            ip="203.0.113.7",
            user_agent="Mozilla/5.0 (Test)",
            channel=channel,
            channel_settings=consent_settings(channel),
        )
        for i in range(n)
    ]


@pytest.fixture
def sealed(channel):
    records = _give(channel, 5)
    sealing.seal_pending(batch_size=2)  # three batches: 2 + 2 + 1 records
    return records


def _bearer(user, **options) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {create_token(user, 'tooling', **options).secret}"}


def test_only_administrators_and_auditors_reach_the_registry(
    sealed, admin_client, auditor_client, operator_client
):
    for client in (admin_client, auditor_client):
        assert client.get(CHECKPOINTS).status_code == 200
        assert client.get(f"{CHECKPOINTS}/1").status_code == 200
    for url in (CHECKPOINTS, f"{CHECKPOINTS}/1"):
        refused = operator_client.get(url)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert Client().get(url).status_code == 401
    assert operator_client.post(VERIFY).status_code == 403
    assert Client().post(VERIFY).status_code == 401
    assert VerificationRun.objects.count() == 0


def test_checkpoints_list_matches_the_database_page_by_page(sealed, auditor):
    auth = _bearer(auditor, read_only=True)
    client = Client()
    stored = [c.as_public_dict() for c in Checkpoint.objects.order_by("-batch_number")]
    assert [c["batch_number"] for c in stored] == [3, 2, 1]
    first = client.get(CHECKPOINTS, {"limit": 2}, **auth).json()
    assert first["items"] == stored[:2] and first["next_cursor"] == 2
    second = client.get(CHECKPOINTS, {"limit": 2, "cursor": 2}, **auth).json()
    assert second["items"] == stored[2:] and second["next_cursor"] is None
    one = client.get(f"{CHECKPOINTS}/2", **auth).json()
    assert one == stored[1]
    # Each JWS verifies with the published keys and signs exactly the listed head.
    for checkpoint in first["items"] + second["items"]:
        header, payload = signing.verify_jws(checkpoint["jws"], key_set=signing.jwks())
        signed = json.loads(payload)
        assert header["kid"] == checkpoint["kid"]
        for key in ("batch_number", "batch_hash", "merkle_root", "record_count", "issued_at"):
            assert signed[key] == checkpoint[key]
    assert signed["record_count"] == 2 and first["items"][0]["record_count"] == 5
    assert client.get(f"{CHECKPOINTS}/4", **auth).status_code == 404
    assert client.get(f"{CHECKPOINTS}/0", **auth).status_code == 404
    bad = client.get(CHECKPOINTS, {"limit": 0}, **auth)
    assert bad.status_code == 422 and "limit" in bad.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_an_auditor_token_verifies_in_the_background_worker_and_reads_passed(sealed, auditor):
    client = Client()
    # Starting a verification writes: a read-only token may not, a writable one may.
    refused = client.post(VERIFY, **_bearer(auditor, read_only=True))
    assert refused.status_code == 403 and refused.json()["code"] == "read_only_token"
    auth = _bearer(auditor)
    started = client.post(VERIFY, **auth)
    assert started.status_code == 202, started.content
    run = started.json()
    assert run["status"] == "queued" and run["finished"] is False
    assert run["requested_by"] == str(auditor) and run["source"] == "console"
    run_worker_once()  # the django-tasks database worker, a separate process, as in production
    done = client.get(f"{VERIFY}/{run['id']}", **auth).json()
    assert done["status"] == "passed", done
    assert done["finished"] is True and done["problem_count"] == 0 and done["problems"] == []
    assert (done["records_checked"], done["records_total"], done["batches_checked"]) == (5, 5, 3)
    assert done["summary"] == "3 batches, 5 sealed records, 0 not sealed yet."


def test_a_failed_verification_lists_its_problems(sealed, admin_client):
    backdated = backdate(sealed[-1], days=3)
    started = admin_client.post(VERIFY)
    assert started.status_code == 202
    run_id = started.json()["id"]
    execute_run(run_id=run_id)
    result = admin_client.get(f"{VERIFY}/{run_id}").json()
    assert result["status"] == "failed" and result["problem_count"] == 1
    assert result["problems"][0]["record_id"] == backdated.pk
    assert result["problems"][0]["message"]
    assert admin_client.get(f"{VERIFY}/999999").status_code == 404
