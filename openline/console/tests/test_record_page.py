"""A record's page shows its evidence and seal as labelled fields, raw JSON one click away."""

from __future__ import annotations

import re

import pytest

from openline.consent.models import ConsentRecord

pytestmark = pytest.mark.django_db

EVIDENCE = [
    "State",
    "Time",
    "Consent",
    "Version",
    "Language",
    "Text hash",
    "Open Channel",
    "Origin",
    "Page URL",
    "IP",
    "User agent",
]
SEAL = [
    "Chain position",
    "Leaf hash",
    "Merkle root",
    "Batch hash",
    "Previous hash",
    "Sealed at",
    "Checkpoint",
    "Key id",
    "Signature",
]


def _section(html: str, dl_id: str) -> str:
    match = re.search(rf'<dl class="kv" id="{dl_id}">(.*?)</dl>', html, re.S)
    assert match, f"the page has #{dl_id}"
    return match.group(1)


def _labels(dl: str) -> list[str]:
    return re.findall(r"<dt>(.*?)</dt>", dl)


def test_evidence_is_labelled_and_the_raw_json_is_behind_a_toggle(auditor_client, known_chat):
    record = ConsentRecord.objects.filter(conversation=known_chat, method="clicked_accept").get()
    page = auditor_client.get(f"/console/obtained-consents/{record.uuid}/").text
    evidence = _section(page, "evidence-fields")
    assert [label for label in EVIDENCE if label not in _labels(evidence)] == []
    assert record.text_sha256 in evidence and "203.0.113.7" in evidence
    assert "https://shop.example.com/pricing?plan=pro" in evidence
    extra = re.search(r'<div id="evidence-extra">(.*?)</div>', page, re.S).group(1)
    assert '<h3 class="kv-section">Recorded with it</h3>' in extra
    assert "<dt>Button</dt><dd>I accept</dd>" in extra
    settings_group = extra.split('<h3 class="kv-section">Open Channel consent settings</h3>')[1]
    assert "<dt>Send warning</dt><dd>Yes</dd>" in settings_group
    raw = re.search(
        r'<details class="raw-json" id="evidence-raw"><summary>Show raw JSON</summary><pre class="json">(.*?)</pre>',
        page,
        re.S,
    )
    assert raw and "&quot;button&quot;: &quot;I accept&quot;" in raw.group(1)


def test_the_seal_is_labelled_with_its_checkpoint(auditor_client, known_chat, settings, tmp_path):
    from openline.consent.sealing import seal_pending

    record = ConsentRecord.objects.filter(conversation=known_chat).order_by("id").first()
    seal_pending()
    page = auditor_client.get(f"/console/obtained-consents/{record.uuid}/").text
    seal = _section(page, "seal-fields")
    assert [label for label in SEAL if label not in _labels(seal)] == []
    assert "Batch #1, leaf 0" in seal and "recomputed, matches" in seal
    assert '<details class="raw-json" id="seal-raw"><summary>Show raw JSON</summary>' in page


def test_an_unsealed_record_says_so(auditor_client, known_chat):
    record = ConsentRecord.objects.filter(conversation=known_chat).order_by("id").first()
    page = auditor_client.get(f"/console/obtained-consents/{record.uuid}/").text
    assert "Not sealed yet." in page and 'id="seal-fields"' not in page
