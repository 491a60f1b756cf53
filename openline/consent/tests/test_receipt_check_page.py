"""The public receipt check page: genuine, forged, altered, missing, malformed, limits."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from openline.consent.models import ConsentRecord
from openline.consent.sealing import seal_pending
from openline.consent.tests.receipt_helpers import signing_key_file, tamper  # noqa: F401
from openline.livechat.tests.helpers import consented_visitor

pytestmark = pytest.mark.usefixtures("signing_key_file", "_generous_rate_limit", "own_cache")

URL = "/registry/receipt-check"


@pytest.fixture
def _generous_rate_limit(settings):
    """Keep the per-IP limit out of the way: every other test here posts from 127.0.0.1."""
    settings.OPENLINE_RECEIPT_CHECKS_PER_MINUTE = 10_000


def receipt_of(client, record, fmt="json"):
    response = client.get(f"/console/obtained-consents/{record.uuid}/receipt/", {"format": fmt})
    assert response.status_code == 200
    return response.text


def check(client, text=None, *, upload=None):
    data = {"receipt": text or ""}
    if upload is not None:
        data["file"] = upload
    return client.post(URL, data)


def steps(response) -> dict[str, str]:
    return dict(re.findall(r'data-step="(\w+)" data-status="(\w+)"', response.text))


def verdict(response) -> str:
    return re.search(r'data-verdict="(\w+)"', response.text).group(1)


@pytest.fixture
def sealed_receipt(auditor_client, give):
    record = give()
    seal_pending()
    return record, receipt_of(auditor_client, record)


def test_the_page_is_public_and_posts_with_csrf(client, sealed_receipt):
    page = client.get(URL)
    assert page.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in page.text and 'type="file"' in page.text
    assert "http://testserver/registry/jwks.json" in page.text
    strict = Client(enforce_csrf_checks=True)
    assert strict.post(URL, {"receipt": sealed_receipt[1]}).status_code == 403


def test_a_genuine_sealed_receipt_checks_out_pasted_uploaded_and_as_html(
    client, auditor_client, sealed_receipt
):
    record, text = sealed_receipt
    pasted = check(client, text)
    assert pasted.status_code == 200 and verdict(pasted) == "ok"
    assert steps(pasted) == {
        "signature": "ok",
        "content": "ok",
        "record": "ok",
        "seal": "ok",
        "checkpoint": "ok",
        "wording": "ok",
    }
    assert "current key" in pasted.text and str(record.uuid) in pasted.text
    assert "no-store" in pasted["Cache-Control"]
    uploaded = check(client, upload=SimpleUploadedFile("r.json", text.encode()))
    assert verdict(uploaded) == "ok"
    html = receipt_of(auditor_client, record, "html")
    from_html = check(client, upload=SimpleUploadedFile("r.html", html.encode()))
    assert verdict(from_html) == "ok"
    bare = check(client, json.loads(text)["jws"])
    assert verdict(bare) == "ok"


def test_a_changed_field_is_reported_as_not_genuine(client, sealed_receipt):
    document = json.loads(sealed_receipt[1])
    document["openline"]["ip"] = "198.51.100.1"
    response = check(client, json.dumps(document))
    assert verdict(response) == "forged" and steps(response)["content"] == "failed"
    assert "Not genuine" in response.text and "openline differ" in response.text


def test_a_changed_signature_is_reported_as_not_genuine(client, sealed_receipt):
    document = json.loads(sealed_receipt[1])
    head, body, signature = document["jws"].split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    document["jws"] = f"{head}.{body}.{flipped}"
    response = check(client, json.dumps(document))
    assert verdict(response) == "forged" and steps(response) == {"signature": "failed"}


def test_a_receipt_signed_with_another_key_is_not_genuine(client, settings, tmp_path, give):
    from openline.consent import receipts

    record = give()
    settings.OPENLINE_SIGNING_KEY_FILE = str(tmp_path / "elsewhere" / "key.pem")
    forged = receipts.signed_receipt(record, base_url="http://testserver")
    settings.OPENLINE_SIGNING_KEY_FILE = str(tmp_path / "signing" / "registry-ed25519.pem")
    response = check(client, json.dumps(forged))
    assert verdict(response) == "forged" and "no published key" in response.text


def test_a_record_altered_after_its_receipt_no_longer_matches(client, sealed_receipt):
    record, text = sealed_receipt
    tamper("UPDATE consent_consentrecord SET ip = %s WHERE id = %s", ["198.51.100.66", record.pk])
    response = check(client, text)
    assert verdict(response) == "changed"
    assert steps(response)["signature"] == "ok" and steps(response)["record"] == "failed"
    assert "no longer matches this receipt" in response.text and "changed: ip" in response.text


def test_a_record_deleted_from_the_registry_is_reported_missing(client, sealed_receipt):
    record, text = sealed_receipt
    tamper("DELETE FROM consent_consentrecord WHERE id = %s", [record.pk])
    response = check(client, text)
    assert verdict(response) == "changed" and steps(response)["record"] == "failed"
    assert "is missing" in response.text


def test_a_checkpoint_whose_batch_was_cut_off_is_reported(client, sealed_receipt):
    record, text = sealed_receipt
    tamper("DELETE FROM consent_checkpoint", [])
    tamper("DELETE FROM consent_sealbatch", [])
    response = check(client, text)
    assert verdict(response) == "changed"
    assert steps(response)["checkpoint"] == "failed" and "cut off" in response.text


def test_altered_wording_is_named(client, sealed_receipt):
    record, text = sealed_receipt
    tamper(
        "UPDATE consent_agreementtext SET rendered_html = %s WHERE version_id = %s",
        ["<p>Forged</p>", record.version_id],
    )
    response = check(client, text)
    assert steps(response)["wording"] == "failed" and "text altered" in response.text


def test_a_pending_receipt_says_pending_not_failed(client, auditor_client, give):
    record = give()
    text = receipt_of(auditor_client, record)
    response = check(client, text)
    assert verdict(response) == "ok"
    assert steps(response)["seal"] == "pending" and "checkpoint" not in steps(response)
    seal_pending()
    assert "it is sealed now" in check(client, text).text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Paste a receipt"),
        ("not json at all", "neither JSON nor a signed receipt"),
        ('{"consentReceiptID": "x"}', "carries no signature"),
        ("[1, 2]", "not one"),
        ("[" * 9000 + "]" * 9000, "neither JSON"),
        ('{"jws": "a.b.c"}', "not genuine"),
        ('{"jws": "a.b.c", "x": "\\ud83d"}', "neither JSON"),
        ("<html><body>hello</body></html>", "holds no Openline receipt"),
        ("eyJhbGciOiJub25lIn0.e30.", "neither JSON"),
    ],
)
def test_malformed_input_gets_a_clear_message_never_a_500(client, text, message):
    response = check(client, text)
    assert response.status_code in (200, 400)
    assert message in response.text


def test_a_binary_or_oversized_upload_is_refused_clearly(client):
    binary = check(client, upload=SimpleUploadedFile("r.json", b"\xff\xfe\x00garbage"))
    assert binary.status_code == 400 and "not text" in binary.text
    big = check(client, upload=SimpleUploadedFile("r.json", b" " * (256 * 1024 + 1)))
    assert big.status_code == 413 and "too large" in big.text
    pasted = check(client, "x" * (256 * 1024 + 1))
    assert pasted.status_code == 413


def test_checks_are_rate_limited_per_client_ip(settings):
    settings.OPENLINE_RECEIPT_CHECKS_PER_MINUTE = 3
    # Addresses of this test alone: the cache (Redis in CI) is shared with parallel tests.
    suffix = uuid.uuid4().int % 65536
    one = Client(REMOTE_ADDR=f"2001:db8:{suffix:x}::1")
    other = Client(REMOTE_ADDR=f"2001:db8:{suffix:x}::2")
    statuses = [one.post(URL, {"receipt": "{}"}).status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]
    assert "Too many checks" in one.post(URL, {"receipt": "{}"}).text
    assert one.get(URL).status_code == 200  # reading the page is not limited
    assert other.post(URL, {"receipt": "{}"}).status_code == 400


def test_a_receipt_downloaded_from_the_widget_checks_out_over_a_real_server(live_asgi, channel):
    started, token = consented_visitor(channel)
    seal_pending()
    with httpx.Client(base_url=live_asgi.url, timeout=10) as http:
        download = http.get(
            f"/widget/{channel.code}/receipt", headers={"Authorization": f"Bearer {token}"}
        )
        assert download.status_code == 200
        document = download.json()
        assert document["verification"]["check_url"] == f"{live_asgi.url}/registry/receipt-check"
        page = http.get("/registry/receipt-check")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        result = http.post(
            "/registry/receipt-check",
            data={"csrfmiddlewaretoken": csrf},
            files={"file": ("consent-receipt.json", download.content, "application/json")},
        )
    assert result.status_code == 200 and verdict_of(result.text) == "ok"
    assert str(started.record.uuid) in result.text
    assert ConsentRecord.objects.filter(uuid=started.record.uuid).exists()


def verdict_of(html: str) -> str:
    return re.search(r'data-verdict="(\w+)"', html).group(1)


def test_a_registry_checkpoint_is_not_accepted_as_a_receipt(client, sealed_receipt):
    checkpoint = json.loads(sealed_receipt[1])["seal"]["checkpoint"]["jws"]
    response = check(client, checkpoint)
    assert verdict(response) == "forged" and "is not a receipt" in response.text
