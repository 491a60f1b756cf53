"""Property tests: arbitrary query strings and JSON bodies never give a 500.

Every console list (and the pages that take numbers in the query string) gets arbitrary
text, digits of other scripts, huge numbers and empty values in each of its parameters;
every JSON endpoint gets arbitrary bodies. Each test also counts the answers and requires
that some valid input was accepted, so a page that refused everything would fail too.
"""

from __future__ import annotations

import itertools
import json
import uuid

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.conversations.models import Conversation
from openline.openchannels.policy import consent_offer
from openline.testing.records import given_livechat_record

pytestmark = pytest.mark.django_db

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ODD_NUMBERS = st.sampled_from(
    ["²", "٣", "१२", "１２", "9" * 5000, str(2**63), str(2**64), "-1", "0", "1e3", " 1", "1_0"]
)
ODD_DATES = st.sampled_from(
    ["9999-12-31", "0001-01-01", "2024-02-30", "2024-13-01", "99999-01-01", "2024-1-1"]
)
ANY_VALUE = st.one_of(
    st.text(max_size=60),  # hypothesis leaves out surrogates: a URL cannot carry them
    ODD_NUMBERS,
    ODD_DATES,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.just(""),
)


def _query(names: list[str], valid: dict[str, list[str]]):
    """Dictionaries of some of ``names`` with arbitrary values, or valid ones from ``valid``."""
    value_for = {
        name: st.one_of(ANY_VALUE, st.sampled_from(valid[name])) if name in valid else ANY_VALUE
        for name in names
    }
    return st.fixed_dictionaries({}, optional=value_for)


@pytest.fixture
def data(channel, administrator):
    """A record, a conversation and a version history to find on the pages."""
    record = given_livechat_record(channel)
    Conversation.objects.create(channel=channel, visitor=record.visitor)
    client = Client()
    client.force_login(administrator)
    return {"client": client, "record": record, "visitor": record.visitor, "channel": channel}


def _pages(data) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    channel = data["channel"]
    agreement = channel.agreement
    ids = {"consent": [str(agreement.pk)], "channel": [str(channel.pk)]}
    record_filter = (
        ["consent", "channel", "period", "date_from", "date_to", "origin", "state", "q", "cursor"],
        {
            **ids,
            "period": ["today", "last7", "custom", ""],
            "date_from": ["2020-01-01"],
            "date_to": ["2999-12-31", "9999-12-31"],
            "origin": ["livechat", "api"],
            "state": ["given", "withdrawn"],
            "q": ["Vera", "203.0.113.7"],
        },
    )
    return {
        "/console/obtained-consents/": record_filter,
        "/console/obtained-consents/export/": (
            [*record_filter[0], "format"],
            {**record_filter[1], "format": ["csv", "json"]},
        ),
        "/console/consents/history/": (["consent", "channel", "before"], ids),
        "/console/consents/": (["page", "q"], {}),
        "/console/consents/new/": (["channel"], ids),
        f"/console/consents/{agreement.pk}/versions/1/diff/": (["against"], {"against": ["1"]}),
        "/console/crm/items/": (
            ["q", "kind", "channel", "consent", "after", "before"],
            {
                **ids,
                "kind": ["lead", "contact"],
                "consent": ["given", "withdrawn", "none"],
                "after": ["100"],
                "before": ["1"],
            },
        ),
        "/console/inbox/": (["box", "page"], {"box": ["open", "waiting", "mine", "closed"]}),
        "/console/users/": (["page", "q"], {}),
        "/console/contact-center/": (["connector"], {"connector": ["livechat", "telegram"]}),
        "/console/contact-center/connectors/livechat/": (["page"], {}),
    }


PAGES = [
    "/console/obtained-consents/",
    "/console/obtained-consents/export/",
    "/console/consents/history/",
    "/console/consents/",
    "/console/consents/new/",
    "diff",
    "/console/crm/items/",
    "/console/inbox/",
    "/console/users/",
    "/console/contact-center/",
    "/console/contact-center/connectors/livechat/",
]


@pytest.mark.parametrize("page", PAGES)
def test_any_query_string_on_console_pages_gets_an_answer_below_500(data, page):
    pages = _pages(data)
    path = next(p for p in pages if "/diff/" in p) if page == "diff" else page
    names, valid = pages[path]
    statuses: list[tuple[int, bool]] = []

    @SETTINGS
    @given(params=_query(names, valid))
    def check(params):
        response = data["client"].get(path, params)
        assert response.status_code < 500, (path, params)
        statuses.append((response.status_code, bool(params)))

    check()
    # Not refusing everything: some query with parameters was answered 200.
    assert (200, True) in statuses, statuses


# ----- JSON endpoints -----------------------------------------------------------------------

JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
UNSTORABLE = st.sampled_from(
    ['{"a": NaN}', "[Infinity]", '"x\\ud83d"', '"nul\\u0000"', "[" * 5000, "{", "\xff", ""]
)


def _record_statuses(statuses: list[int], response) -> None:
    assert response.status_code < 500, response.content[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    statuses.append(response.status_code)


def test_any_widget_start_body_gets_an_answer_below_500(data):
    channel = data["channel"]
    shown = consent_offer(channel, "en")
    valid_consent = {
        "version": shown.version.id,
        "language": shown.language,
        "sha256": shown.sha256,
    }
    addresses = (f"10.9.{n // 250}.{n % 250 + 1}" for n in itertools.count())
    body = st.fixed_dictionaries(
        {"consent": st.one_of(st.just(valid_consent), JSON_VALUE)},
        optional={
            "text": st.one_of(st.just("Hello"), JSON_VALUE),
            "client_id": st.one_of(st.text(max_size=80), JSON_VALUE),
            "page_url": st.one_of(st.just("https://shop.example/"), st.text(max_size=80)),
            "language": st.one_of(st.sampled_from(["en", "de"]), JSON_VALUE),
        },
    )
    statuses: list[int] = []

    @SETTINGS
    @given(raw=st.one_of(body.map(json.dumps), JSON_VALUE.map(json.dumps), UNSTORABLE))
    def check(raw):
        # A fresh client address each time keeps the per-IP start limit out of the way.
        client = Client(REMOTE_ADDR=next(addresses))
        response = client.post(
            f"/widget/{channel.code}/start", data=raw, content_type="application/json"
        )
        _record_statuses(statuses, response)

    check()
    assert 201 in statuses and 400 in statuses, sorted(set(statuses))


def test_any_api_post_body_gets_an_answer_below_500(data):
    client = data["client"]
    visitor, agreement = data["visitor"], data["channel"].agreement
    conversation = Conversation.objects.get(visitor=visitor)
    ids = {
        "visitor_id": st.one_of(st.just(str(visitor.public_id)), st.uuids().map(str), JSON_VALUE),
        "consent_id": st.one_of(st.just(agreement.pk), JSON_VALUE),
    }
    optional = {
        "address": st.one_of(st.just("https://example.com/"), st.text(max_size=40)),
        "ip": st.one_of(st.just("198.51.100.4"), st.text(max_size=40), JSON_VALUE),
        "language": st.one_of(st.just("en"), JSON_VALUE),
        "evidence": st.one_of(st.dictionaries(st.text(max_size=10), JSON_VALUE), JSON_VALUE),
        "source_label": st.text(max_size=40),
    }
    endpoints = {
        "/api/v1/consents/records": st.fixed_dictionaries(ids, optional=optional),
        "/api/v1/consents/withdrawals": st.fixed_dictionaries(ids, optional=optional),
        f"/api/v1/crm/conversations/{conversation.pk}/save": st.fixed_dictionaries(
            {},
            optional={
                "name": st.one_of(st.just("Vera"), JSON_VALUE),
                "email": st.one_of(st.just("vera@example.com"), st.text(max_size=30)),
                "phone": st.one_of(st.just("+49 30 1234567"), st.text(max_size=30)),
                "kind": st.sampled_from(["lead", "contact", "customer"]),
            },
        ),
    }
    for path, body in endpoints.items():
        statuses = _post_any(client, path, st.one_of(body.map(json.dumps), UNSTORABLE))
        assert {200, 201} & set(statuses), (path, sorted(set(statuses)))
        assert {400, 422} & set(statuses), (path, sorted(set(statuses)))


def _post_any(client, path: str, bodies) -> list[int]:
    statuses: list[int] = []

    @SETTINGS
    @given(raw=bodies)
    def check(raw):
        response = client.post(path, data=raw, content_type="application/json")
        _record_statuses(statuses, response)
        if response.status_code >= 400:
            assert response.json()["code"] and response.json()["detail"]

    check()
    return statuses


def test_uuid_of_nobody_is_not_found_not_an_error(data):
    # The smallest case of the above, kept as a readable example.
    response = data["client"].post(
        "/api/v1/consents/records",
        data=json.dumps({"visitor_id": str(uuid.uuid4()), "consent_id": 1}),
        content_type="application/json",
    )
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
