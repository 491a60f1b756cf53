"""Fuzzed chat start bodies through the one-statement path: never a 500, nothing written for a 4xx."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.conversations.models import Visitor
from openline.livechat import limits
from openline.livechat.tests.helpers import accepted_for

pytestmark = pytest.mark.django_db(transaction=True)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
odd_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60
) | st.sampled_from(["", " ", "\u202e\u200b", "x" * 4001, "👋" * 4000, "\x00", "e\u0301" * 30])
odd_bodies = (
    st.binary(max_size=200)
    | st.just(b"[" * 5000 + b"]" * 5000)
    | st.just(b'{"text": "hi", "consent": {"version": ' + b"9" * 5000 + b"}}")
    | st.just(b'{"text": "\\ud800 lone", "client_id": "\\u0000"}')
    | st.just(b'{"text": 1e999}')
    | st.just(b'{"text": NaN}')
)

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def bodies(channel):
    accepted = accepted_for(channel)
    consent = st.fixed_dictionaries(
        {
            "version": st.just(accepted.version_id) | json_values,
            "language": st.just(accepted.language) | json_values,
            "sha256": st.just(accepted.sha256) | json_values,
        }
    )
    start = st.fixed_dictionaries(
        {"text": odd_text | json_values},
        optional={
            "client_id": odd_text | json_values,
            "language": odd_text | json_values,
            "page_url": st.sampled_from(
                ["https://shop.example/p?q=1", "javascript:alert(1)", "http://[::1", "x" * 5000]
            )
            | json_values,
            "consent": consent | json_values,
        },
    )
    return start.map(lambda d: json.dumps(d).encode()) | odd_bodies


@pytest.fixture
def start_url(postgres_only, live_asgi, channel, monkeypatch):
    monkeypatch.setattr(limits.STARTS_PER_IP, "burst", 1_000_000)
    return f"{live_asgi.url}/widget/{channel.code}/start", channel


def test_fuzzed_start_bodies_never_answer_500_and_a_4xx_writes_nothing(start_url):
    url, channel = start_url
    client = httpx.Client(timeout=30)
    seen: set[int] = set()

    @FUZZ
    @given(body=bodies(channel), key=st.none() | st.text(min_size=0, max_size=70))
    def check(body, key):
        headers = {"Content-Type": "application/json"}
        if key is not None and key.isascii() and key.isprintable():
            headers["Idempotency-Key"] = key
        before = Visitor.objects.count()
        response = client.post(url, content=body, headers=headers)
        seen.add(response.status_code)
        assert response.status_code < 500, response.text[:300]
        if response.status_code >= 400:
            assert Visitor.objects.count() == before, response.text[:300]
            assert "error" in response.json()

    check()
    client.close()
    assert 201 in seen and 400 in seen
