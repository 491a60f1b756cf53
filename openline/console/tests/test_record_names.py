"""Obtained consents show the CRM's name of a client and find records by name, e-mail or
phone; the export applies the same filter (filters = export). The registry stays pseudonymous.
"""

from __future__ import annotations

import csv
import io
import json
import re
from contextlib import contextmanager

import pytest
from django.db import connection

from openline.consent.models import ConsentRecord
from openline.conversations.models import Visitor
from openline.crm.models import CrmItem, CrmVisitor

LIST = "/console/obtained-consents/"
EXPORT = "/console/obtained-consents/export/"
RECORD_LINK = re.compile(r'href="/console/obtained-consents/([0-9a-f-]{36})/"')

pytestmark = pytest.mark.django_db


def _listed(client, **params) -> set[str]:
    response = client.get(LIST, params)
    assert response.status_code == 200
    return set(RECORD_LINK.findall(response.text))


def _exported(client, fmt: str, **params) -> set[str]:
    response = client.get(EXPORT, {**params, "format": fmt})
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    if fmt == "csv":
        return {row["record_id"] for row in csv.DictReader(io.StringIO(body))}
    return {json.loads(line)["record_id"] for line in body.splitlines()}


@contextmanager
def _sql_params():
    """Collect the parameters of every SQL statement run inside the block."""
    seen: list[tuple] = []

    def wrapper(execute, sql, params, many, context):
        seen.append(tuple(params or ()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield seen


def _records_of(chat) -> set[str]:
    return {
        str(u)
        for u in ConsentRecord.objects.filter(visitor=chat.visitor).values_list("uuid", flat=True)
    }


def test_the_client_column_shows_the_crm_name_else_the_pseudonym(
    auditor_client, known_chat, unknown_chat
):
    page = auditor_client.get(LIST).text
    assert '<th scope="col">Client</th>' in page
    known = str(known_chat.visitor)
    assert re.search(
        r'data-label="Client" class="client"><a [^>]*>Jane Doe</a><span class="sub">'
        + re.escape(known),
        page,
    )
    unknown = str(unknown_chat.visitor)
    assert re.search(
        r'data-label="Client" class="client"><a [^>]*>' + re.escape(unknown) + "</a></td>", page
    )


@pytest.mark.parametrize("query", ["Jane", "jane.doe@example", "030 1234567", "+49 30 1234567"])
def test_search_by_crm_name_email_or_phone_equals_the_export(
    auditor_client, known_chat, unknown_chat, query
):
    expected = _records_of(known_chat)
    assert expected and not expected & _records_of(unknown_chat)
    assert _listed(auditor_client, q=query) == expected
    assert _exported(auditor_client, "csv", q=query) == expected
    assert _exported(auditor_client, "jsonl", q=query) == expected


def test_a_name_search_combines_with_the_other_filters_in_list_and_export(
    auditor_client, known_chat, unknown_chat, channel
):
    params = {"q": "Jane", "state": "withdrawn", "channel": channel.pk}
    assert _listed(auditor_client, **params) == set() == _exported(auditor_client, "csv", **params)
    params["state"] = "given"
    assert _listed(auditor_client, **params) == _records_of(known_chat)
    assert _exported(auditor_client, "jsonl", **params) == _records_of(known_chat)


def test_nobody_matching_lists_nothing_and_exports_nothing(
    auditor_client, known_chat, unknown_chat
):
    assert _listed(auditor_client, q="Nobody Smith") == set()
    assert _exported(auditor_client, "csv", q="Nobody Smith") == set()


def test_reading_names_writes_nothing_to_the_registry(auditor_client, known_chat):
    before = list(ConsentRecord.objects.order_by("id").values())
    visitor = Visitor.objects.get(pk=known_chat.visitor_id)
    auditor_client.get(LIST, {"q": "Jane"})
    _exported(auditor_client, "csv", q="Jane")
    assert list(ConsentRecord.objects.order_by("id").values()) == before
    # The registry's own rows hold the pseudonymous visitor, not the CRM's name.
    assert "Jane" not in json.dumps([str(v) for v in before[0].values()])
    # So the search above found her through the CRM, not through the visitor row.
    assert (visitor.name, visitor.email, visitor.phone) == ("", "", "")


def test_a_search_matching_2000_clients_stays_a_subquery_in_list_and_exports(
    auditor_client, known_chat, unknown_chat, channel
):
    # 2,000 more clients called "Jane …": 1,000 in the CRM, 1,000 by their messenger profile.
    visitors = Visitor.objects.bulk_create(
        Visitor(origin="livechat", channel=channel, name="Jane Roe" if i % 2 else "")
        for i in range(2000)
    )
    items = CrmItem.objects.bulk_create(
        CrmItem(name=f"Jane Client {i}", source_channel=channel) for i in range(1000)
    )
    CrmVisitor.objects.bulk_create(
        CrmVisitor(item=item, visitor=visitor)
        for item, visitor in zip(items, visitors[0::2], strict=True)
    )
    expected = _records_of(known_chat)

    with _sql_params() as params:
        listed = _listed(auditor_client, q="jane")
        as_csv = _exported(auditor_client, "csv", q="jane")
        as_jsonl = _exported(auditor_client, "jsonl", q="jane")
        api = auditor_client.get("/api/v1/consents/records", {"q": "jane"})

    assert api.status_code == 200, api.content
    by_api = {item["id"] for item in api.json()["items"]}
    # Only Jane Doe gave a consent; the others are found but have no records.
    assert listed == as_csv == as_jsonl == by_api == expected
    assert max(len(p) for p in params) <= 50, [len(p) for p in params]


@pytest.mark.parametrize("query", ["J", "0", "30", "123"])
def test_one_letter_or_few_digits_find_no_client_by_name(
    auditor_client, known_chat, unknown_chat, query
):
    assert _listed(auditor_client, q=query) == set() == _exported(auditor_client, "csv", q=query)


def test_the_ip_search_still_works(auditor_client, known_chat, unknown_chat):
    def records_from(ip: str) -> set[str]:
        return {str(u) for u in ConsentRecord.objects.filter(ip=ip).values_list("uuid", flat=True)}

    from_known = records_from("203.0.113.7")
    assert from_known and from_known <= _records_of(known_chat)
    assert _listed(auditor_client, q="203.0.113.7") == from_known
    assert _exported(auditor_client, "csv", q="203.0.113.7") == from_known
    assert _listed(auditor_client, q="2001:db8::1") == _records_of(unknown_chat)
    assert _exported(auditor_client, "csv", q="2001:db8::1") == _records_of(unknown_chat)
