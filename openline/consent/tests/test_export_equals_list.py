"""What the Obtained consents list shows is exactly what its exports contain, for every filter.

A registry of records spread over consents, Open Channels, origins, states, users, IPs and
days is filtered every way the console offers. For each filter the record ids on the list
(walking every keyset page through the "Older records" link, as an auditor would), in the CSV
export and in the JSON Lines export are the same set, and equal to the set this test expects
from its own description of the data (not from the product's query).

The count above the list is exact up to 1,000 records, then says "More than 1,000 records";
on PostgreSQL a large table shows the planner's estimate, checked on a table of 12,000 rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.utils import timezone

from openline.consent import triggers
from openline.consent.models import (
    ConsentMethod,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
    SourceType,
)
from openline.consent.services import create_agreement, record_consent
from openline.conversations.models import Visitor

LIST = "/console/obtained-consents/"
EXPORT = "/console/obtained-consents/export/"
RECORD_LINK = re.compile(r'href="/console/obtained-consents/([0-9a-f-]{36})/"')
NEXT_LINK = re.compile(r'<a class="btn" rel="next" href="([^"]+)"')
DAYS_AGO = [0, 1, 3, 10, 20, 35, 50, 70]
ORIGINS = [
    ConsentOrigin.LIVECHAT,
    ConsentOrigin.API,
    ConsentOrigin.CRM,
    ConsentOrigin.TELEGRAM,
    ConsentOrigin.LIVECHAT,
]


@dataclass
class Made:
    uuid: str
    who: str
    channel: str
    origin: str
    state: str
    ip: str
    day: dt.date


def _noon(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(12)))


@pytest.fixture
def registry(channel, administrator):
    """72 records (more than one page of 50) with known attributes; returns their description."""
    from openline.openchannels.services import create_open_channel

    newsletter = create_agreement(
        actor=administrator, name="Newsletter notice", text="We send news.", allow_html=False
    )
    shop = create_open_channel(
        actor=administrator,
        name="Shop",
        connectors=["livechat"],
        consent_enabled=True,
        agreement=newsletter,
    )
    people = {
        "vera": Visitor.objects.create(
            origin="livechat", channel=channel, name="Vera Visitor", email="vera@example.com"
        ),
        "walt": Visitor.objects.create(
            origin="livechat", channel=shop, name="Walt Webber", email="walt@shop.example"
        ),
    }
    channels = {"website": channel, "shop": shop}
    today = timezone.localdate()
    made: list[Made] = []
    for i in range(72):
        who = "vera" if i % 2 else "walt"
        where = "website" if (i // 2) % 2 else "shop"
        withdrawn = i % 6 == 0
        record = record_consent(
            visitor=people[who],
            version=channels[where].agreement.current_version,
            language="en",
            state=ConsentState.WITHDRAWN if withdrawn else ConsentState.GIVEN,
            method=ConsentMethod.WITHDRAWN_BY_CLIENT if withdrawn else ConsentMethod.CLICKED_ACCEPT,
            origin=ORIGINS[i % 5],
            source_type=SourceType.WEBSITE,
            source_label="example.com",
            address="https://example.com/pricing",
            ip=f"203.0.113.{i % 4 + 1}",
            channel=channels[where],
        )
        made.append(
            Made(
                uuid=str(record.uuid),
                who=who,
                channel=where,
                origin=ORIGINS[i % 5],
                state=record.state,
                ip=record.ip,
                day=today - dt.timedelta(days=DAYS_AGO[i % 8]),
            )
        )
    # Spread the records over past days (test data only: the triggers forbid UPDATE).
    triggers.drop(connection)
    try:
        with connection.cursor() as cursor:
            for m in made:
                # Through the backend's adapters, so the row reads like an ORM-written one.
                cursor.execute(
                    "UPDATE consent_consentrecord SET created_at = %s WHERE uuid = %s",
                    [
                        connection.ops.adapt_datetimefield_value(_noon(m.day)),
                        ConsentRecord._meta.get_field("uuid").get_db_prep_value(
                            uuid.UUID(m.uuid), connection
                        ),
                    ],
                )
    finally:
        triggers.install(connection)
    return {
        "made": made,
        "today": today,
        "people": people,
        "channels": channels,
        "newsletter": newsletter,
    }


def listed(client, query: dict) -> list[str]:
    """Record ids on every page of the list for ``query``, following the "Older records" link."""
    url = f"{LIST}?{urlencode(query)}"
    seen: list[str] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        body = response.content.decode()
        seen += RECORD_LINK.findall(body)
        found = NEXT_LINK.search(body)
        url = LIST + html.unescape(found.group(1)) if found else None
        pages += 1
        assert pages < 10, "the pages do not end"
    return seen


def exported(client, query: dict, fmt: str) -> list[str]:
    response = client.get(f"{EXPORT}?{urlencode({**query, 'format': fmt})}")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    if fmt == "csv":
        return [row["record_id"] for row in csv.DictReader(io.StringIO(body))]
    return [json.loads(line)["record_id"] for line in body.splitlines()]


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def expectations(registry) -> list[tuple[str, dict, callable]]:
    """(label, query, predicate on Made) for every filter the console offers."""
    today: dt.date = registry["today"]
    last_month_end = _month_start(today) - dt.timedelta(days=1)
    walt = registry["people"]["walt"]
    shop = registry["channels"]["shop"]
    one = registry["made"][7]
    custom_from, custom_to = today - dt.timedelta(days=25), today - dt.timedelta(days=8)
    return [
        ("no filter", {}, lambda m: True),
        ("today", {"period": "today"}, lambda m: m.day == today),
        ("yesterday", {"period": "yesterday"}, lambda m: m.day == today - dt.timedelta(days=1)),
        ("last 7 days", {"period": "last7"}, lambda m: (today - m.day).days < 7),
        ("last 30 days", {"period": "last30"}, lambda m: (today - m.day).days < 30),
        ("this month", {"period": "this_month"}, lambda m: m.day >= _month_start(today)),
        (
            "last month",
            {"period": "last_month"},
            lambda m: _month_start(last_month_end) <= m.day <= last_month_end,
        ),
        (
            "custom range",
            {
                "period": "custom",
                "date_from": custom_from.isoformat(),
                "date_to": custom_to.isoformat(),
            },
            lambda m: custom_from <= m.day <= custom_to,
        ),
        (
            "from only",
            {"period": "custom", "date_from": custom_from.isoformat()},
            lambda m: m.day >= custom_from,
        ),
        ("origin api", {"origin": "api"}, lambda m: m.origin == "api"),
        ("origin crm", {"origin": "crm"}, lambda m: m.origin == "crm"),
        ("state withdrawn", {"state": "withdrawn"}, lambda m: m.state == "withdrawn"),
        ("state given", {"state": "given"}, lambda m: m.state == "given"),
        ("text: user name", {"q": "walt"}, lambda m: m.who == "walt"),
        ("text: e-mail", {"q": "vera@example"}, lambda m: m.who == "vera"),
        ("text: IP", {"q": "203.0.113.2"}, lambda m: m.ip == "203.0.113.2"),
        ("text: visitor id", {"q": str(walt.public_id)}, lambda m: m.who == "walt"),
        ("text: record id", {"q": one.uuid}, lambda m: m.uuid == one.uuid),
        ("channel", {"channel": shop.pk}, lambda m: m.channel == "shop"),
        ("consent", {"consent": registry["newsletter"].pk}, lambda m: m.channel == "shop"),
        (
            "combined",
            {"channel": shop.pk, "state": "given", "period": "last30", "q": "walt"},
            lambda m: (
                m.channel == "shop"
                and m.state == "given"
                and (today - m.day).days < 30
                and m.who == "walt"
            ),
        ),
    ]


def test_list_csv_and_jsonl_hold_the_same_records_for_every_filter(auditor_client, registry):
    made: list[Made] = registry["made"]
    checked = []
    for label, query, wanted in expectations(registry):
        expected = {m.uuid for m in made if wanted(m)}
        assert expected, f"{label}: the test data must give this filter something to find"
        on_list = listed(auditor_client, query)
        in_csv = exported(auditor_client, query, "csv")
        in_jsonl = exported(auditor_client, query, "jsonl")
        assert len(on_list) == len(set(on_list)), f"{label}: a record is listed twice"
        assert set(on_list) == expected, label
        assert in_csv == on_list, f"{label}: CSV differs from the list (or its order)"
        assert in_jsonl == on_list, f"{label}: JSON Lines differs from the list (or its order)"
        checked.append(label)
    assert len(checked) == 21


def test_the_unfiltered_list_takes_more_than_one_page(auditor_client, registry):
    response = auditor_client.get(LIST)
    assert len(RECORD_LINK.findall(response.content.decode())) == 50
    assert NEXT_LINK.search(response.content.decode())
    assert '<p class="muted" id="record-count">72 records</p>' in response.content.decode()


# ----- the count on a large table ---------------------------------------------------------


def _clone_rows(source_id: int, copies: int) -> None:
    """Insert ``copies`` rows like record ``source_id`` in one INSERT … SELECT (triggers stay on)."""
    columns = [
        f.column for f in ConsentRecord._meta.concrete_fields if f.column not in ("id", "uuid")
    ]
    listed_columns = ", ".join(columns)
    if connection.vendor == "postgresql":
        sql = (
            f"INSERT INTO consent_consentrecord (uuid, {listed_columns}) "
            f"SELECT gen_random_uuid(), {listed_columns} FROM consent_consentrecord, "
            "generate_series(1, %s) WHERE id = %s"
        )
    else:
        sql = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            f"INSERT INTO consent_consentrecord (uuid, {listed_columns}) "
            f"SELECT lower(hex(randomblob(16))), {listed_columns} FROM consent_consentrecord, n "
            "WHERE id = %s"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [copies, source_id])
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE consent_consentrecord")


def _count_line(client, query: str = "") -> str:
    body = client.get(f"{LIST}?{query}").content.decode()
    found = re.search(r'<p class="muted" id="record-count">([^<]*)', body)
    assert found, "the list shows no count"
    return found.group(1)


@pytest.fixture
def few_records(give) -> int:
    """Three records from one IP: a filter that stays under the cap."""
    for _ in range(3):
        give(ip="203.0.113.99", source_id="few")
    return 3


def test_past_the_cap_the_count_says_more_than_1000(auditor_client, give, few_records):
    source = give(source_id="template")
    _clone_rows(source.pk, 1000)
    assert ConsentRecord.objects.count() == 1001 + few_records
    line = _count_line(auditor_client)
    if connection.vendor == "sqlite":
        assert line == "More than 1,000 records"
    else:  # PostgreSQL adds its planner's estimate once past the cap
        assert re.fullmatch(r"More than 1,000 records \(about 1,0\d\d\)", line), line
    # A filter that matches few records still gets the exact count.
    assert _count_line(auditor_client, "q=203.0.113.99") == f"{few_records} records"


@pytest.fixture
def fresh_statistics_afterwards(django_db_blocker):
    """Re-analyse the records table once the test's rows are rolled back.

    ANALYZE writes the planner's row estimate in place, outside the test's transaction, so
    without this the next test on this database would see an estimate of 12,000 records.
    Requested before the database fixture, so this teardown runs after its rollback.
    """
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("ANALYZE consent_consentrecord")


def test_a_large_postgresql_table_shows_the_planner_estimate(
    fresh_statistics_afterwards, postgres_only, auditor_client, give, few_records
):
    source = give(source_id="template")
    _clone_rows(source.pk, 12_000)
    actual = ConsentRecord.objects.count()
    assert actual == 12_001 + few_records
    line = _count_line(auditor_client)
    found = re.fullmatch(r"More than 1,000 records \(about ([\d,]+)\)", line)
    assert found, line
    estimate = int(found.group(1).replace(",", ""))
    assert actual * 0.5 <= estimate <= actual * 1.5, (estimate, actual)
    assert _count_line(auditor_client, "q=203.0.113.99") == "3 records"
