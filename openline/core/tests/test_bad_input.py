"""Bad query parameters, dates, cursors and JSON get a clear 4xx, never a 500.

Each case below answered 500 before ``core.params`` and ``core.jsonsafe``: ``"²".isdigit()``
is True but ``int("²")`` raises; a 5,000-digit number is longer than ``int()`` converts;
``9999-12-31`` plus one day overflows; a cursor id past 2**63 overflows the database
integer; ``NaN`` is not JSON any database stores.
"""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from openline.consent.models import (
    ConsentRecord,
)
from openline.core import jsonsafe
from openline.core.params import MAX_ID, BadParam, day_after, is_int, parse_id, parse_int
from openline.testing.records import given_livechat_record

pytestmark = pytest.mark.django_db

# Superscript two, Arabic-Indic three, a 5,000-digit number, 2**64, and a few near misses.
BAD_NUMBERS = ["%C2%B2", "%D9%A3", "9" * 5000, str(2**64), "-1", "1_0", "+1", "%201"]


@pytest.fixture
def record(channel):
    return given_livechat_record(channel)


@pytest.fixture
def admin(administrator) -> Client:
    """An administrator's client that returns 500 responses instead of raising them."""
    client = Client(raise_request_exception=False)
    client.force_login(administrator)
    return client


# ----- the strict parsers -----------------------------------------------------------------


@pytest.mark.parametrize("raw", ["²", "٣", "1_000", " 7", "7 ", "+7", "-7", "0x1", "", "9" * 20])
def test_only_ascii_digits_within_bigint_are_numbers(raw):
    assert not is_int(raw)
    assert is_int("7") and is_int(str(MAX_ID)) and not is_int(str(MAX_ID + 1))


def test_parse_id_names_the_parameter_and_keeps_empty_as_none():
    assert parse_id("", name="before") is None and parse_id(None, name="before") is None
    assert parse_id("42", name="before") == 42
    with pytest.raises(BadParam, match="^before: "):
        parse_id("²", name="before")
    with pytest.raises(BadParam):
        parse_id("0", name="before")
    assert parse_int("0", name="after") == 0


def test_the_last_day_has_no_next_day():
    import datetime as dt

    assert day_after(dt.date(9999, 12, 31)) is None
    assert day_after(dt.date(2024, 2, 28)) == dt.date(2024, 2, 29)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("[" * 9000 + "]" * 9000, "too_deep"),
        ('{"a": NaN}', "bad_number"),
        ("[Infinity]", "bad_number"),
        ("[1e999]", "bad_number"),
        ('"x\\ud83d"', "bad_text"),
        ('"a\\u0000"', "bad_text"),
        ("9" * 5000, "bad_json"),
        ('"' + 'a\\"' * 50_000, "bad_json"),  # unterminated: must stay linear, not hang
        (b"\xff", "bad_encoding"),
    ],
)
def test_jsonsafe_refuses_what_cannot_be_stored(raw, code):
    with pytest.raises(jsonsafe.UnsafeJson) as caught:
        jsonsafe.loads(raw)
    assert caught.value.code == code and caught.value.message


def test_jsonsafe_accepts_ordinary_json_with_brackets_in_strings():
    text = json.dumps({"a": ["[[[[" * 20, {"b": "\U0001f600"}], "n": 1.5})
    assert jsonsafe.loads(text)["a"][1]["b"] == "\U0001f600"
    assert jsonsafe.loads("[" * 32 + "]" * 32) is not None


# ----- console pages ----------------------------------------------------------------------


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize(
    "path",
    [
        "/console/consents/history/?before={}",
        "/console/consents/history/?consent={}",
        "/console/consents/history/?channel={}",
        "/console/consents/new/?channel={}",
        "/console/crm/items/?after={}",
        "/console/crm/items/?before={}",
    ],
)
def test_bad_numbers_in_console_query_parameters_answer_400_naming_them(admin, record, path, value):
    response = admin.get(path.format(value))
    assert response.status_code == 400
    name = path.split("?")[1].split("=")[0]
    assert f"<strong>{name}</strong>" in response.content.decode()


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_bad_against_version_is_not_found(admin, agreement, value):
    response = admin.get(f"/console/consents/{agreement.pk}/versions/1/diff/?against={value}")
    assert response.status_code == 404


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize("field", ["consent", "channel"])
def test_bad_numbers_in_the_obtained_consents_filter_show_the_field_error(
    admin, record, field, value
):
    response = admin.get(f"/console/obtained-consents/?{field}={value}")
    assert response.status_code == 200
    assert "were not applied" in response.content.decode()


def test_good_numbers_still_filter(admin, record, channel, agreement):
    assert admin.get(f"/console/consents/history/?channel={channel.pk}").status_code == 200
    assert admin.get(f"/console/consents/history/?before={MAX_ID}").status_code == 200
    assert admin.get(f"/console/crm/items/?after={MAX_ID}").status_code == 200
    page = admin.get(f"/console/obtained-consents/?consent={agreement.pk}").content.decode()
    assert str(record.visitor.public_id)[:8] in page


def test_date_to_on_the_last_day_lists_and_exports_everything(admin, record):
    query = "period=custom&date_from=0001-01-01&date_to=9999-12-31"
    page = admin.get(f"/console/obtained-consents/?{query}")
    assert page.status_code == 200
    assert "were not applied" not in page.content.decode()
    assert str(record.visitor.public_id)[:8] in page.content.decode()
    export = admin.get(f"/console/obtained-consents/export/?{query}&format=csv")
    assert export.status_code == 200
    assert str(record.uuid) in b"".join(export.streaming_content).decode()


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


OUT_OF_RANGE_CURSORS = [
    _cursor(f"2024-01-01T00:00:00+00:00|{2**64}"),
    _cursor(f"2024-01-01T00:00:00+00:00|{'9' * 5000}"),
    _cursor("2024-01-01T00:00:00+00:00|²"),
    _cursor("0001-01-01T00:00:00+14:00|1"),  # before year 1 in UTC
]


@pytest.mark.parametrize("cursor", OUT_OF_RANGE_CURSORS)
def test_out_of_range_cursor_on_obtained_consents_says_the_link_is_not_valid(admin, record, cursor):
    response = admin.get(f"/console/obtained-consents/?cursor={cursor}")
    assert response.status_code == 200
    assert "This page link is not valid" in response.content.decode()


# ----- API ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cursor", OUT_OF_RANGE_CURSORS)
def test_out_of_range_cursor_in_the_api_is_400(admin, record, cursor):
    response = admin.get(f"/api/v1/consents/records?cursor={cursor}")
    if len(cursor) > 200:  # longer than the documented maximum: a validation error
        assert (response.status_code, response.json()["code"]) == (422, "invalid")
    else:
        assert (response.status_code, response.json()["code"]) == (400, "bad_request")
        assert "not valid" in response.json()["detail"]


def test_until_the_last_day_in_the_api_lists_everything(admin, record):
    response = admin.get("/api/v1/consents/records?since=0001-01-01&until=9999-12-31")
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [str(record.uuid)]


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_bad_numbers_in_api_queries_are_4xx_with_an_error_body(admin, record, value):
    for path in ("/api/v1/consents/records?consent=", "/api/v1/crm/items?after="):
        response = admin.get(path + value)
        assert response.status_code in (404, 422), (path, value, response.status_code)
        assert set(response.json()) >= {"code", "detail"}


def _post_record(client, visitor, agreement, evidence_json: str):
    body = (
        f'{{"visitor_id": "{visitor.public_id}", "consent_id": {agreement.pk}, '
        f'"evidence": {evidence_json}}}'
    )
    return client.post("/api/v1/consents/records", data=body, content_type="application/json")


@pytest.mark.parametrize(
    ("evidence", "status", "code"),
    [
        ('{"score": NaN}', 422, "bad_number"),
        ('{"score": Infinity}', 422, "bad_number"),
        ('{"score": -Infinity}', 422, "bad_number"),
        ('{"score": 1e999}', 422, "bad_number"),
        ('{"note": "x\\ud83d"}', 422, "bad_text"),
        ('{"note": "a\\u0000b"}', 422, "bad_text"),
        ('{"deep": ' + "[" * 9000 + "]" * 9000 + "}", 400, "too_deep"),
    ],
)
def test_unstorable_evidence_is_refused_with_a_clear_message(admin, record, evidence, status, code):
    before = ConsentRecord.objects.count()
    response = _post_record(admin, record.visitor, record.agreement, evidence)
    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["detail"]
    assert ConsentRecord.objects.count() == before


def test_finite_evidence_is_accepted(admin, record):
    response = _post_record(admin, record.visitor, record.agreement, '{"score": 0.5, "e": "😀"}')
    assert response.status_code == 201, response.content
    assert response.json()["evidence"]["score"] == 0.5


def test_api_errors_carry_a_code_and_a_detail(admin, auditor_client):
    unknown = admin.get("/api/v1/consents/records/00000000-0000-0000-0000-000000000000")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert "matches the given query" not in unknown.json()["detail"]
    invalid = admin.get("/api/v1/consents/records?limit=0")
    assert (invalid.status_code, invalid.json()["code"]) == (422, "invalid")
    assert invalid.json()["detail"].startswith("limit:") and invalid.json()["errors"]
    assert Client().get("/api/v1/crm/items").json()["code"] == "unauthenticated"
    assert auditor_client.get("/api/v1/crm/items").json()["code"] == "forbidden"
