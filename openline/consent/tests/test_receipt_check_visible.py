"""The receipt check shows the signed facts and flags an HTML receipt whose printed text was edited."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from openline.consent.models import ConsentRecord
from openline.consent.sealing import seal_pending
from openline.consent.tests.receipt_helpers import signing_key_file  # noqa: F401

pytestmark = pytest.mark.usefixtures("signing_key_file", "_generous_rate_limit", "own_cache")

URL = "/registry/receipt-check"
_SCRIPT = re.compile(r'<script[^>]*id="openline-receipt"[^>]*>.*?</script>', re.S)


@pytest.fixture
def _generous_rate_limit(settings):
    settings.OPENLINE_RECEIPT_CHECKS_PER_MINUTE = 10_000


def _html_receipt(auditor_client, record) -> str:
    response = auditor_client.get(
        f"/console/obtained-consents/{record.uuid}/receipt/", {"format": "html"}
    )
    assert response.status_code == 200
    return response.text


def _check_html(client, html: str):
    return client.post(URL, {"file": SimpleUploadedFile("receipt.html", html.encode())})


def _visible_only(html: str, old: str, new: str) -> str:
    """Replace ``old`` by ``new`` in the visible text only; the signed JSON stays untouched."""
    embedded = _SCRIPT.search(html).group(0)
    edited = _SCRIPT.sub("\x00", html).replace(old, new)
    return edited.replace("\x00", embedded)


def _facts(response) -> dict[str, str]:
    return dict(re.findall(r'<dd data-fact="([\w-]+)">([^<]*)</dd>', response.text))


@pytest.fixture
def sealed(give):
    record = give()
    seal_pending()
    return ConsentRecord.objects.select_related("visitor").get(pk=record.pk)


def test_the_check_shows_the_signed_facts_of_a_genuine_html_receipt(client, auditor_client, sealed):
    response = _check_html(client, _html_receipt(auditor_client, sealed))
    assert re.search(r'data-verdict="ok"', response.text)
    assert re.search(r'data-step="visible" data-status="ok"', response.text)
    facts = _facts(response)
    assert facts["state"] == sealed.state
    assert facts["client-piiprincipalid"] == str(sealed.visitor.public_id)
    assert facts["consent"] == sealed.agreement.name
    assert facts["ip"] == "203.0.113.7"
    assert facts["version"] == str(sealed.version.number)
    assert facts["method"] and facts["origin"] and facts["date-utc"]


def test_an_html_receipt_with_edited_visible_text_is_not_genuine(client, auditor_client, sealed):
    html = _html_receipt(auditor_client, sealed)
    assert sealed.ip == "203.0.113.7" and "<dd>Given</dd>" in _SCRIPT.sub("", html)
    forged = _visible_only(html, "<code>203.0.113.7</code>", "<code>198.51.100.77</code>")
    forged = _visible_only(forged, "<dd>Given</dd>", "<dd>Withdrawn</dd>")
    assert _SCRIPT.search(forged).group(0) == _SCRIPT.search(html).group(0)
    response = _check_html(client, forged)
    assert re.search(r'data-verdict="forged"', response.text)
    assert re.search(r'data-step="visible" data-status="failed"', response.text)
    assert "printed text of this HTML receipt was edited: State, IP differ" in response.text
    assert "Only the signed facts shown on this page count" in response.text
    # The page shows what was signed, not what the edited file says.
    assert _facts(response)["ip"] == "203.0.113.7"
    assert _facts(response)["state"] == sealed.state


def test_an_edit_outside_the_fact_list_is_flagged_too(client, auditor_client, sealed):
    html = _html_receipt(auditor_client, sealed)
    forged = _visible_only(html, "<h1>Consent receipt</h1>", "<h1>Consent receipt (renewed)</h1>")
    response = _check_html(client, forged)
    assert re.search(r'data-step="visible" data-status="failed"', response.text)
    assert "other visible text differ" in response.text
