"""Console, API, receipt and export responses carry personal data: no cache may keep them."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.test import Client


def _no_store(response) -> bool:
    directives = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    return "no-store" in directives


@pytest.fixture
def started(channel):
    """A visitor accepted the consent and started a chat through the widget's endpoint."""
    http = Client()
    url = f"/widget/{channel.code}/start"
    body = {"text": "My e-mail is vera@example.com", "client_id": "c1"}
    offered = http.post(url, body, content_type="application/json")
    consent = offered.json()["consent"]
    body["consent"] = {k: consent[k] for k in ("version", "language", "sha256")}
    response = http.post(url, body, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def test_console_pages_and_exports_are_not_stored(auditor_client, started):
    record = apps.get_model("consent", "ConsentRecord").objects.get(uuid=started["record"])
    for path in (
        "/console/obtained-consents/",
        f"/console/obtained-consents/{record.uuid}/",
        f"/console/obtained-consents/{record.uuid}/receipt/",
        "/console/obtained-consents/export/?format=csv",
        "/console/obtained-consents/export/?format=jsonl",
    ):
        response = auditor_client.get(path)
        assert response.status_code == 200, path
        assert _no_store(response), (path, response.get("Cache-Control"))


def test_operator_inbox_is_not_stored(operator_client, started):
    response = operator_client.get("/console/inbox/")
    assert response.status_code == 200
    assert _no_store(response)


def test_api_answers_are_not_stored(auditor_client, started):
    for path in (
        "/api/v1/consents/records",
        f"/api/v1/consents/records/{started['record']}",
        f"/api/v1/consents/records/{started['record']}/receipt",
    ):
        response = auditor_client.get(path)
        assert response.status_code == 200, path
        assert _no_store(response), (path, response.get("Cache-Control"))


def test_refusals_are_not_stored_either(client, started):
    # A login redirect or a 401 from the API must not be cached in place of the page.
    assert _no_store(client.get("/console/obtained-consents/"))
    assert _no_store(client.get("/api/v1/consents/records"))


def test_visitor_receipt_is_not_stored(channel, started):
    response = Client().get(
        f"/widget/{channel.code}/receipt", HTTP_AUTHORIZATION=f"Bearer {started['token']}"
    )
    assert response.status_code == 200
    assert _no_store(response)


def test_public_widget_script_stays_cacheable(channel):
    response = Client().get(f"/widget/{channel.code}.js")
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
