"""Signed receipts from the console, the widget and the API: JSON and printable HTML."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from openline.consent import receipt_check, signing
from openline.consent.models import AgreementText
from openline.consent.sealing import seal_pending
from openline.consent.tests.receipt_helpers import (  # noqa: F401 - fixture
    signing_key_file,
    tamper,
    verify_compact_jws,
)
from openline.livechat.tests.helpers import consented_visitor

pytestmark = pytest.mark.usefixtures("signing_key_file")

EMBEDDED = re.compile(r'<script id="openline-receipt" type="application/json">(.*?)</script>', re.S)


def console_json(client, record, **params):
    return client.get(f"/console/obtained-consents/{record.uuid}/receipt/", params)


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def check_offline(document: dict, jwks: dict) -> dict:
    """Check a receipt as an outside party would: JWKS, hashlib and cryptography only."""
    header, payload = verify_compact_jws(document["jws"], jwks)
    assert header["typ"] == "openline-receipt+jws"
    rest = {k: v for k, v in document.items() if k != "jws"}
    assert payload == canonical(rest)
    leaf = hashlib.sha256(b"\x00" + canonical(document["leaf"]["record"])).digest()
    assert leaf.hex() == document["leaf"]["hash"]
    seal = document["seal"]
    current = leaf
    for step in seal["audit_path"]:
        other = bytes.fromhex(step["hash"])
        current = node(other, current) if step["side"] == "left" else node(current, other)
    assert current.hex() == seal["merkle_root"]
    checkpoint_header, checkpoint_body = verify_compact_jws(seal["checkpoint"]["jws"], jwks)
    assert checkpoint_header["typ"] == "openline-checkpoint+jws"
    signed_head = json.loads(checkpoint_body)
    assert signed_head["merkle_root"] == seal["merkle_root"]
    assert signed_head["batch_hash"] == seal["batch_hash"]
    assert signed_head["batch_number"] == seal["batch_number"]
    return signed_head


def strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def test_console_receipt_is_signed_and_an_outsider_can_follow_it_to_the_checkpoint(
    auditor_client, client, give
):
    record = give()
    seal_pending()
    response = console_json(auditor_client, record)
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        f'attachment; filename="consent-receipt-{record.uuid}.json"'
    )
    assert "no-store" in response["Cache-Control"]
    document = response.json()
    jwks = client.get("/registry/jwks.json").json()
    head = check_offline(document, jwks)
    assert head["last_record_id"] >= record.pk
    assert document["consentReceiptID"] == str(record.uuid)
    assert document["leaf"]["record"]["uuid"] == str(record.uuid)
    assert document["notice"]["text_check"]["ok"] is True
    shown = AgreementText.objects.get(version=record.version, language="en")
    assert document["notice"]["text_html"] == shown.rendered_html


def test_receipt_of_an_unsealed_record_says_pending_and_is_still_signed(
    auditor_client, client, give
):
    record = give()
    document = console_json(auditor_client, record).json()
    assert document["seal"]["status"] == "pending"
    jwks = client.get("/registry/jwks.json").json()
    _, payload = verify_compact_jws(document["jws"], jwks)
    assert json.loads(payload)["seal"]["status"] == "pending"


def test_widget_receipt_is_signed_json_and_printable_html(client, channel):
    started, token = consented_visitor(channel)
    seal_pending()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    response = client.get(f"/widget/{channel.code}/receipt", **auth)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    check_offline(response.json(), client.get("/registry/jwks.json").json())
    page = client.get(f"/widget/{channel.code}/receipt?format=html", **auth)
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert page["Content-Disposition"] == (
        f'attachment; filename="consent-receipt-{started.record.uuid}.html"'
    )
    embedded = json.loads(EMBEDDED.search(page.text).group(1))
    check_offline(embedded, client.get("/registry/jwks.json").json())
    assert client.get(f"/widget/{channel.code}/receipt?format=pdf", **auth).status_code == 400


def test_api_receipt_is_signed_json_and_html_and_the_docs_list_both(auditor_client, client, give):
    record = give()
    seal_pending()
    url = f"/api/v1/consents/records/{record.uuid}/receipt"
    check_offline(auditor_client.get(url).json(), client.get("/registry/jwks.json").json())
    page = auditor_client.get(url, {"format": "html"})
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert str(record.uuid) in page.text
    assert auditor_client.get(url, {"format": "pdf"}).status_code == 422
    schema = auditor_client.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/consents/records/{record_id}/receipt"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/html"}
    (param,) = [p for p in operation["parameters"] if p["name"] == "format"]
    assert param["schema"]["enum"] == ["json", "html"]


def test_printable_receipt_is_self_contained_with_print_css_and_no_navigation(auditor_client, give):
    record = give()
    seal_pending()
    page = console_json(auditor_client, record, format="html")
    assert page.status_code == 200 and page["Content-Disposition"].startswith("inline;")
    html = page.text
    assert "@media print" in html and "<nav" not in html
    assert "<link" not in html and "<script src" not in html
    # The one inline style is allowed by its hash; nothing else may load.
    csp = page["Content-Security-Policy"]
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    import base64

    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert "Sealed" in html and record.text_sha256 in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert "http://testserver/registry/receipt-check" in hrefs
    for href in hrefs:
        assert re.match(r"https?://[^/]", href), href
    detail = auditor_client.get(f"/console/obtained-consents/{record.uuid}/").text
    assert f"/console/obtained-consents/{record.uuid}/receipt/?format=html" in detail
    assert console_json(auditor_client, record, format="xml").status_code == 400


@pytest.mark.parametrize("public_url", ["", "https://consent.example.org"])
def test_receipts_contain_only_absolute_links(
    settings, public_url, auditor_client, client, channel
):
    settings.OPENLINE_PUBLIC_URL = public_url
    base = public_url or "http://testserver"
    started, token = consented_visitor(channel)
    record = started.record
    documents = [
        console_json(auditor_client, record).json(),
        auditor_client.get(f"/api/v1/consents/records/{record.uuid}/receipt").json(),
        client.get(f"/widget/{channel.code}/receipt", HTTP_AUTHORIZATION=f"Bearer {token}").json(),
    ]
    # Withdrawal keywords ("/stop") are words a client types, kept in the settings evidence.
    keywords = set(channel.withdraw_keywords.splitlines())
    for document in documents:
        assert not [s for s in strings(document) if s.startswith("/") and s not in keywords]
        own = [s for s in strings(document) if s.startswith(f"{base}/")]
        assert len(own) >= 6, own  # controller, policy, notice, JWKS, checkpoint, check page
        assert document["policyUrl"] == (
            f"{base}/c/{record.version.public_code}/?lang={record.language}"
        )
        assert document["verification"]["check_url"] == f"{base}/registry/receipt-check"
        assert document["verification"]["jwks_url"] == f"{base}/registry/jwks.json"
    html = console_json(auditor_client, record, format="html").text
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert f"{base}/registry/receipt-check" in hrefs
    for href in hrefs:
        assert re.match(r"https?://[^/]", href), href


def test_receipt_host_follows_the_request_when_no_public_url(settings, auditor_client, give):
    settings.OPENLINE_PUBLIC_URL = ""
    settings.ALLOWED_HOSTS = ["consent.customer.test"]
    record = give()
    document = auditor_client.get(
        f"/console/obtained-consents/{record.uuid}/receipt/", HTTP_HOST="consent.customer.test"
    ).json()
    assert document["policyUrl"].startswith("http://consent.customer.test/c/")


def test_receipt_names_altered_wording_instead_of_presenting_it_as_genuine(auditor_client, give):
    record = give()
    tamper(
        "UPDATE consent_agreementtext SET rendered_html = %s WHERE version_id = %s",
        ["<p>We may sell your data.</p>", record.version_id],
    )
    document = console_json(auditor_client, record).json()
    assert document["notice"]["text_check"]["ok"] is False
    assert "text altered" in document["notice"]["text_check"]["message"]
    assert document["notice"]["text_html"] is None
    assert document["notice"]["hash"]["value"] == record.text_sha256
    html = console_json(auditor_client, record, format="html").text
    assert 'id="text-check-alert"' in html and "We may sell your data" not in html
    assert 'id="shown-text"' not in html


def test_receipt_signed_before_key_rotation_still_verifies(auditor_client, client, give):
    record = give()
    seal_pending()
    document = console_json(auditor_client, record).json()
    old_kid = signing.current_key().kid
    signing.rotate()
    assert signing.current_key().kid != old_kid
    jwks = client.get("/registry/jwks.json").json()
    assert {key["kid"] for key in jwks["keys"]} >= {old_kid, signing.current_key().kid}
    check_offline(document, jwks)
    result = receipt_check.check_receipt(json.dumps(document))
    assert result.ok and result.kid == old_kid and result.key_status == "retired"
    fresh = console_json(auditor_client, record).json()
    assert receipt_check.check_receipt(json.dumps(fresh)).key_status == "current"


def test_a_record_the_sealer_refused_is_not_called_pending(auditor_client, client, give):
    import datetime as dt

    first = give()
    seal_pending()
    late = give()
    backdated = first.created_at - dt.timedelta(days=30)
    tamper("UPDATE consent_consentrecord SET created_at = %s WHERE id = %s", [backdated, late.pk])
    seal_pending()
    document = console_json(auditor_client, late).json()
    assert document["seal"]["status"] == "unsealed"
    result = receipt_check.check_receipt(json.dumps(document))
    assert result.genuine and not result.ok
    assert [s.status for s in result.steps if s.name == "seal"] == ["failed"]
    html = console_json(auditor_client, late, format="html").text
    assert "not sealed" in html
