"""Consents and their versions over the API: immutable versions, public URLs, roles."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from django.test import Client

from openline.consent.models import Agreement, AgreementVersion, AuditEvent

URL = "/api/v1/agreements"


def _post(client: Client, url: str, body, method: str = "post"):
    return getattr(client, method)(url, data=json.dumps(body), content_type="application/json")


def test_administrators_and_auditors_read_operators_do_not(
    admin_client, auditor_client, operator_client, agreement
):
    for client in (admin_client, auditor_client):
        listed = client.get(URL).json()["items"]
        assert [a["id"] for a in listed] == [agreement.pk]
        assert listed[0]["current_version"]["number"] == 1
        detail = client.get(f"{URL}/{agreement.pk}").json()
        assert [v["number"] for v in detail["versions"]] == [1]
    refused = operator_client.get(URL)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert operator_client.get(f"{URL}/{agreement.pk}/versions").status_code == 403
    assert auditor_client.post(URL, data={}, content_type="application/json").status_code in (
        403,
        422,
    )
    assert _post(auditor_client, URL, {"name": "X", "text": "Y"}).status_code == 403
    assert Client().get(URL).status_code == 401
    assert admin_client.get(f"{URL}/987654").status_code == 404


def test_each_version_has_its_public_text_url(admin_client, agreement):
    version = admin_client.get(f"{URL}/{agreement.pk}/versions/1").json()
    stored = AgreementVersion.objects.get(agreement=agreement, number=1)
    assert version["public_url"].endswith(f"/{stored.public_code}/")
    assert version["texts"][0]["language"] == "en"
    assert version["texts"][0]["sha256"] == stored.texts.get().sha256
    # The public page (no sign-in) shows exactly this wording.
    page = Client().get(urlsplit(version["public_url"]).path)
    assert page.status_code == 200
    assert "We process your name" in page.content.decode()
    assert admin_client.get(f"{URL}/{agreement.pk}/versions/9").status_code == 404


def test_create_and_reword_make_immutable_versions(admin_client, administrator):
    created = _post(
        admin_client,
        URL,
        {
            "name": "Newsletter",
            "text": "We send you <b>news</b><script>alert(1)</script>.",
            "allow_html": True,
            "translations": {"de": "Wir senden Ihnen Neuigkeiten."},
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    agreement = Agreement.objects.get(pk=body["id"])
    assert agreement.created_by == administrator
    # Translations given at creation become the second version, as in the console.
    current = body["current_version"]
    assert {t["language"] for t in current["texts"]} == {"en", "de"}
    english = next(t for t in current["texts"] if t["language"] == "en")
    assert "<b>news</b>" in english["html"] and "<script" not in english["html"]
    first_url = body["versions"][-1]["public_url"]

    reworded = _post(admin_client, f"{URL}/{agreement.pk}/versions", {"texts": {"en": "New."}})
    assert reworded.status_code == 201, reworded.content
    assert reworded.json()["number"] == current["number"] + 1
    assert reworded.json()["public_url"] != first_url
    # The same wording again makes no version.
    same = _post(admin_client, f"{URL}/{agreement.pk}/versions", {"texts": {"en": "New."}})
    assert same.status_code == 200 and same.json()["number"] == reworded.json()["number"]
    # Older versions keep their text.
    first = AgreementVersion.objects.get(agreement=agreement, number=1)
    assert "news" in first.texts.get(language="en").text
    assert AuditEvent.objects.filter(agreement=agreement).count() >= 2


def test_validation_errors_name_the_field(admin_client, agreement):
    cases = [
        (URL, {"name": "X", "text": "   "}, "text"),
        (URL, {"name": "", "text": "Y"}, "name"),
        (URL, {"name": "X", "text": "Y", "language": "e n"}, "language"),
        (f"{URL}/{agreement.pk}/versions", {"texts": {"en": " "}}, "texts.en"),
        (f"{URL}/{agreement.pk}/versions", {"texts": {}}, "texts"),
        (
            f"{URL}/{agreement.pk}/versions",
            {"texts": {"de": "x"}, "remove_languages": ["en"]},
            "language",
        ),
    ]
    for url, body, field in cases:
        response = _post(admin_client, url, body)
        assert response.status_code == 422, (body, response.content)
        assert response.json()["code"] == "invalid"
        assert field in response.json()["detail"], (field, response.json())
    assert Agreement.objects.count() == 1
    assert agreement.versions.count() == 1


def test_rename_and_deactivate(admin_client, auditor_client, agreement):
    url = f"{URL}/{agreement.pk}"
    assert _post(auditor_client, url, {"name": "X"}, method="patch").status_code == 403
    renamed = _post(admin_client, url, {"name": "Privacy"}, method="patch")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Privacy"
    off = _post(admin_client, url, {"is_active": False}, method="patch")
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert admin_client.get(URL, {"active": "true"}).json()["items"] == []
