"""The Obtained consents list: filters, keyset pages, export, detail, receipt, roles."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from openline.consent import export, selectors, services
from openline.consent.models import ConsentOrigin, ConsentRecord
from openline.conversations.models import Visitor


def _backdate(record, days: int) -> None:
    """Move a record into the past (test data only: the triggers forbid UPDATE, so re-insert)."""
    from openline.consent import triggers

    triggers.drop(connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE consent_consentrecord SET created_at = %s WHERE id = %s",
                [timezone.now() - dt.timedelta(days=days), record.pk],
            )
    finally:
        triggers.install(connection)


@pytest.fixture
def other_agreement(administrator):
    return services.create_agreement(
        actor=administrator, name="Newsletter notice", text="Other", allow_html=False
    )


def _rows(response) -> int:
    return response.content.decode().count('title="Record ')


def test_filter_by_consent_and_last_7_days(auditor_client, give, agreement, other_agreement):
    recent = give()
    old = give()
    _backdate(old, 20)
    give(agreement=other_agreement)
    response = auditor_client.get(
        f"/console/obtained-consents/?consent={agreement.pk}&period=last7"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert str(recent.uuid) in body and str(old.uuid) not in body and _rows(response) == 1
    last30 = auditor_client.get(f"/console/obtained-consents/?consent={agreement.pk}&period=last30")
    assert _rows(last30) == 2
    assert _rows(auditor_client.get("/console/obtained-consents/")) == 3


@pytest.mark.parametrize(
    "period,days_ago,included",
    [
        ("today", 0, True),
        ("yesterday", 1, True),
        ("yesterday", 0, False),
        ("last7", 6, True),
        ("last7", 8, False),
    ],
)
def test_date_presets(auditor_client, give, period, days_ago, included):
    record = give()
    if days_ago:
        _backdate(record, days_ago)
    body = auditor_client.get(f"/console/obtained-consents/?period={period}").content.decode()
    assert (str(record.uuid) in body) is included


def test_period_bounds_for_months():
    since, until = selectors.period_bounds("last_month", today=dt.date(2026, 3, 15))
    assert (since.date(), until.date()) == (dt.date(2026, 2, 1), dt.date(2026, 3, 1))
    since, until = selectors.period_bounds("this_month", today=dt.date(2026, 1, 31))
    assert (since.date(), until.date()) == (dt.date(2026, 1, 1), dt.date(2026, 2, 1))


def test_filter_by_origin_state_ip_and_user_text(auditor_client, give, channel, visitor, agreement):
    bob = Visitor.objects.create(origin="telegram", channel=channel, name="Bob Builder")
    mine = give(ip="2001:db8::42")
    theirs = give(who=bob, ip="", origin=ConsentOrigin.TELEGRAM, method="continued_chatting")

    def shown(query):
        body = auditor_client.get(f"/console/obtained-consents/?{query}").content.decode()
        return {str(mine.uuid) in body, str(theirs.uuid) in body}

    assert shown("origin=telegram") == {False, True}
    assert shown("q=2001:db8::42") == {True, False}
    assert shown("q=bob") == {False, True}
    assert shown(f"q={str(bob.public_id)[:8]}") == {False, True}
    services.withdraw_consent(
        visitor=visitor, agreement=agreement, origin="livechat", source_type="website"
    )
    body = auditor_client.get("/console/obtained-consents/?state=withdrawn").content.decode()
    assert _rows_of(body) == 1


def _rows_of(body: str) -> int:
    return body.count('title="Record ')


def test_invalid_date_and_unknown_consent_show_errors_next_to_the_filter(
    auditor_client, give, agreement
):
    give()
    response = auditor_client.get(
        "/console/obtained-consents/?period=custom&date_from=2026-13-45&origin=livechat&q=vera"
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Enter a valid date" in body and 'value="vera"' in body and _rows_of(body) == 1
    unknown = auditor_client.get("/console/obtained-consents/?consent=999999").content.decode()
    assert "Unknown consent" in unknown
    reversed_range = auditor_client.get(
        "/console/obtained-consents/?period=custom&date_from=2026-05-02&date_to=2026-05-01"
    ).content.decode()
    assert "end date is before the start date" in reversed_range


def test_keyset_pages_walk_every_record_once_without_offset(auditor_client, give):
    made = {str(give(source_id=str(i)).uuid) for i in range(57)}
    seen: list[str] = []
    url = "/console/obtained-consents/"
    pages = 0
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = auditor_client.get(url)
        assert not any("OFFSET" in q["sql"].upper() for q in queries.captured_queries)
        page = response.context["page"]
        seen += [str(r.uuid) for r in page.records]
        url = f"/console/obtained-consents/?cursor={page.next_cursor}" if page.next_cursor else None
        pages += 1
    assert pages == 2 and len(seen) == 57 and set(seen) == made
    created = [r.created_at for r in ConsentRecord.objects.filter(uuid__in=seen[:50])]
    assert sorted(created, reverse=True) == [
        ConsentRecord.objects.get(uuid=u).created_at for u in seen[:50]
    ]
    bad = auditor_client.get("/console/obtained-consents/?cursor=%%%garbage")
    assert bad.status_code == 200 and "not valid" in bad.content.decode()


def test_count_is_capped_not_exact_on_big_sets(give):
    for _ in range(3):
        give()
    assert selectors.count_estimate(ConsentRecord.objects.all()) == (3, True)


def test_operators_get_403_on_list_export_detail_and_receipt(operator_client, give):
    record = give()
    for url in (
        "/console/obtained-consents/",
        "/console/obtained-consents/export/?format=csv",
        f"/console/obtained-consents/{record.uuid}/",
        f"/console/obtained-consents/{record.uuid}/receipt/",
    ):
        assert operator_client.get(url).status_code == 403, url


def _export(client, query: str) -> bytes:
    response = client.get(f"/console/obtained-consents/export/?{query}")
    assert response.status_code == 200 and response.streaming
    return b"".join(response.streaming_content)


def test_csv_export_streams_the_filtered_set_with_text_hashes(
    auditor_client, give, agreement, other_agreement
):
    wanted = [give(source_id=str(i)) for i in range(3)]
    give(agreement=other_agreement)
    rows = list(
        csv.DictReader(
            io.StringIO(_export(auditor_client, f"consent={agreement.pk}&format=csv").decode())
        )
    )
    assert [r["record_id"] for r in rows] == [str(r.uuid) for r in reversed(wanted)]
    assert rows[0]["text_sha256"] == wanted[0].text_sha256 and rows[0]["ip"] == "203.0.113.7"
    assert rows[0]["user"] == "Vera Visitor" and rows[0]["consent"] == agreement.name


def test_jsonl_export_and_chunking(auditor_client, give, monkeypatch):
    monkeypatch.setattr(export, "EXPORT_CHUNK", 2)
    made = [give(source_id=str(i)) for i in range(5)]
    lines = _export(auditor_client, "format=jsonl").decode().splitlines()
    assert [json.loads(line)["record_id"] for line in lines] == [
        str(r.uuid) for r in reversed(made)
    ]


def test_csv_export_defuses_spreadsheet_formulas(auditor_client, give):
    give(source_label='=HYPERLINK("http://evil")')
    text = _export(auditor_client, "format=csv").decode()
    assert "'=HYPERLINK" in text


def test_export_refuses_a_broken_filter_and_unknown_format(auditor_client):
    assert (
        auditor_client.get("/console/obtained-consents/export/?date_from=nope").status_code == 400
    )
    assert auditor_client.get("/console/obtained-consents/export/?format=xlsx").status_code == 400


def test_client_supplied_addresses_never_become_script_links(auditor_client, give):
    record = give(
        address="javascript:alert(document.cookie)", source_label="<img src=x onerror=alert(1)>"
    )
    for url in ("/console/obtained-consents/", f"/console/obtained-consents/{record.uuid}/"):
        body = auditor_client.get(url).content.decode()
        assert 'href="javascript:' not in body
        assert "<img src=x onerror" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body


def test_links_point_at_conversation_and_crm_item(admin_client, auditor_client, give):
    give(
        source_type="crm_item",
        source_id="17",
        source_label="Lead #17",
        origin="crm",
        method="saved_to_crm",
        address="/console/inbox/5/",
    )
    body = admin_client.get("/console/obtained-consents/").content.decode()
    assert 'href="/console/crm/items/17/"' in body and 'href="/console/inbox/5/"' in body
    # Auditors have neither the CRM nor the inbox: the chat opens as a read-only transcript.
    body = auditor_client.get("/console/obtained-consents/").content.decode()
    assert 'href="/console/transcripts/5/"' in body
    assert 'href="/console/crm/items/17/"' not in body and 'href="/console/inbox/5/"' not in body


def test_detail_page_shows_the_exact_text_and_offers_the_receipt(auditor_client, give, agreement):
    record = give()
    body = auditor_client.get(f"/console/obtained-consents/{record.uuid}/").content.decode()
    assert agreement.current_version.texts.get().rendered_html in body
    assert "matches the stored text" in body and "Download receipt" in body
    assert "Delete" not in body and "delete" not in body.lower().replace("deleted client", "")
    assert (
        auditor_client.get(
            "/console/obtained-consents/00000000-0000-0000-0000-000000000000/"
        ).status_code
        == 404
    )


def test_receipt_uses_consent_receipt_field_names_and_includes_the_seal(auditor_client, give):
    from openline.consent.sealing import seal_pending, verify_proof

    record = give()
    pending = auditor_client.get(f"/console/obtained-consents/{record.uuid}/receipt/").json()
    assert pending["seal"]["status"] == "pending"
    seal_pending()
    receipt = auditor_client.get(f"/console/obtained-consents/{record.uuid}/receipt/").json()
    for key in (
        "consentReceiptID",
        "consentTimestamp",
        "collectionMethod",
        "piiPrincipalId",
        "piiControllers",
        "policyUrl",
        "services",
        "language",
        "notice",
        "state",
    ):
        assert key in receipt, key
    assert receipt["consentReceiptID"] == str(record.uuid)
    assert receipt["notice"]["hash"]["value"] == record.text_sha256
    assert receipt["piiPrincipalId"] == str(record.visitor.public_id)
    assert f"/c/{record.version.public_code}/" in receipt["policyUrl"]
    seal = receipt["seal"]
    assert verify_proof(bytes.fromhex(seal["leaf_hash"]), seal["audit_path"], seal["merkle_root"])


def test_no_delete_control_or_route_exists(admin_client, give):
    record = give()
    body = admin_client.get("/console/obtained-consents/").content.decode().lower()
    assert "delete" not in body.replace("cannot be changed or deleted", "")
    # The record page only shows: a POST (or DELETE) is not a method it serves.
    detail = f"/console/obtained-consents/{record.uuid}/"
    assert admin_client.post(detail, {"delete": "1"}).status_code == 405
    assert admin_client.delete(detail).status_code == 405
    assert ConsentRecord.objects.filter(pk=record.pk).exists()


def test_export_streams_over_a_real_asgi_server(live_asgi, auditor, give, monkeypatch):
    import httpx
    from django.test import Client

    monkeypatch.setattr(export, "EXPORT_CHUNK", 3)
    made = [give(source_id=str(i)) for i in range(7)]
    session = Client()
    session.force_login(auditor)
    cookies = {"sessionid": session.cookies["sessionid"].value}
    chunks = []
    with httpx.stream(
        "GET", f"{live_asgi.url}/console/obtained-consents/export/?format=csv", cookies=cookies
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-disposition"].startswith("attachment;")
        chunks = list(response.iter_bytes())
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert [r["record_id"] for r in rows] == [str(r.uuid) for r in reversed(made)]
    jsonl = httpx.get(
        f"{live_asgi.url}/console/obtained-consents/export/?format=jsonl", cookies=cookies
    )
    assert len(jsonl.text.splitlines()) == 7
