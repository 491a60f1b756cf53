"""The one-statement chat start once its statement ran, and when it fails: never a false answer.

A capture that committed is answered 201 whatever happens next (a breaker opened by another
request, follow-up work failing); an unexpected error is a JSON 500, never the view's second
capture; PostgreSQL's refusals that are not outages go to the view; a 503 carries the same
headers as the view's; the rate limit comes before any consent-text read; ids reserved ahead
of time are never older than ``ID_MAX_AGE``.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import psycopg
import psycopg.errors as pg_errors
import pytest
from django.test import RequestFactory
from psycopg_pool import PoolTimeout

from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Message
from openline.core import pgasync, unavailable
from openline.livechat import capture_pg, limits, start_lean, views
from openline.livechat.tests.helpers import start_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lean(monkeypatch):
    """The starts the one-statement path stored."""
    stored = []
    original = capture_pg.capture

    async def counted(*args, **kwargs):
        result = await original(*args, **kwargs)
        stored.append(result[0])
        return result

    monkeypatch.setattr(capture_pg, "capture", counted)
    return stored


def test_a_breaker_opened_during_the_statement_does_not_turn_the_capture_into_a_503(
    postgres_only, live_asgi, channel, monkeypatch
):
    original = capture_pg.capture

    async def capture_then_breaker_opens(*args, **kwargs):
        result = await original(*args, **kwargs)
        unavailable.breaker._open_since = time.monotonic()  # another request tripped it
        return result

    monkeypatch.setattr(capture_pg, "capture", capture_then_breaker_opens)
    try:
        answer = httpx.post(
            f"{live_asgi.url}/widget/{channel.code}/start", json=start_body(channel)
        )
    finally:
        unavailable.breaker.reset()
    assert answer.status_code == 201, answer.text
    assert answer.json()["record"] == str(ConsentRecord.objects.get().uuid)
    assert Message.objects.count() == 1
    # The middleware's headers are still there.
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_follow_up_work_failing_after_the_commit_still_answers_201(
    postgres_only, live_asgi, channel, monkeypatch, lean
):
    def boom(**kwargs):
        raise RuntimeError("the executor is gone")

    monkeypatch.setattr(start_lean, "_after_commit", boom)
    answer = httpx.post(f"{live_asgi.url}/widget/{channel.code}/start", json=start_body(channel))
    assert answer.status_code == 201 and len(lean) == 1
    assert ConsentRecord.objects.count() == 1


def test_an_unexpected_error_is_a_json_500_and_the_view_does_not_capture_again(
    postgres_only, live_asgi, channel, monkeypatch, lean
):
    def broken(channel, started):
        raise RuntimeError("cannot build the answer")

    monkeypatch.setattr(views, "_started_response", broken)
    answer = httpx.post(
        f"{live_asgi.url}/widget/{channel.code}/start",
        json=start_body(channel),
        headers={"Idempotency-Key": "after-commit-error-0001"},
    )
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": "server_error"}
    # Stored once, by the statement; the widget's retry with its key is replayed.
    assert len(lean) == 1 and ConsentRecord.objects.count() == 1
    monkeypatch.undo()
    again = httpx.post(
        f"{live_asgi.url}/widget/{channel.code}/start",
        json=start_body(channel),
        headers={"Idempotency-Key": "after-commit-error-0001"},
    )
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert ConsentRecord.objects.count() == 1


@pytest.mark.parametrize(
    "error",
    [
        pg_errors.QueryCanceled,
        pg_errors.DeadlockDetected,
        pg_errors.LockNotAvailable,
        pg_errors.SerializationFailure,
    ],
)
def test_refusals_that_are_not_outages_go_to_the_view(error, monkeypatch, db):
    suspected = []
    monkeypatch.setattr(unavailable.breaker, "suspect", lambda: suspected.append(1))
    request = RequestFactory().post("/widget/abc/start")
    assert start_lean._failed(request, start_lean._Stack(), error("refused")) is None
    assert suspected == []


@pytest.mark.parametrize(
    "error",
    [PoolTimeout("no connection"), psycopg.OperationalError("connection refused")],
    ids=["pool timeout", "unreachable"],
)
def test_an_unreachable_database_is_a_503_with_the_views_headers(error, monkeypatch, db):
    monkeypatch.setattr(unavailable.breaker, "suspect", lambda: None)
    request = RequestFactory().post("/widget/abc/start")
    response = start_lean._failed(request, start_lean._Stack(), error)
    assert response is not None and response.status_code == 503
    assert response["Retry-After"] == str(unavailable.RETRY_AFTER[unavailable.DOWN])
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in response


def test_the_rate_limit_comes_before_any_consent_text_is_read(
    postgres_only, live_asgi, channel, monkeypatch
):
    monkeypatch.setattr(limits.STARTS_PER_IP, "burst", 2.0)
    monkeypatch.setattr(limits.STARTS_PER_IP, "rate", 0.001)
    reads = []
    original = capture_pg.load_shown

    def counted(state, language):
        reads.append(language)
        return original(state, language)

    monkeypatch.setattr(capture_pg, "load_shown", counted)
    statuses = []
    with httpx.Client() as client:
        for i in range(30):
            # Each with another (unknown) language: no cached text would help.
            body = start_body(channel, language=f"x{i}")
            statuses.append(
                client.post(f"{live_asgi.url}/widget/{channel.code}/start", json=body).status_code
            )
    assert statuses.count(429) >= 27
    assert len(reads) <= 3, f"{len(reads)} consent-text reads for {statuses.count(429)} refusals"


def test_reserved_ids_older_than_their_age_are_not_used(
    postgres_only, live_asgi, channel, monkeypatch
):
    monkeypatch.setattr(capture_pg, "ID_MAX_AGE", 0.3)
    url = f"{live_asgi.url}/widget/{channel.code}/start"
    made = []
    for i, fast in enumerate((True, False, True)):
        monkeypatch.setattr(start_lean, "ENABLED", fast)
        answer = httpx.post(url, json=start_body(channel, f"start {i}"))
        assert answer.status_code == 201
        made.append(answer.json()["conversation"]["id"])
        time.sleep(0.4)
    # The third start's block was reserved after the second start: ids in creation order.
    assert made == sorted(made)
    assert Conversation.objects.count() == 3


def test_a_block_of_ids_follows_the_rate_of_starts(postgres_only, monkeypatch):
    async def take(count: int) -> list[tuple[int, int, int]]:
        taken = [await capture_pg._next_ids() for _ in range(count)]
        await pgasync.close()
        return taken

    async def quiet_starts() -> None:
        for _ in range(2):
            await asyncio.sleep(0.25)
            await capture_pg._next_ids()
        await pgasync.close()

    capture_pg._ids.clear()
    monkeypatch.setattr(capture_pg, "_block", 8)
    monkeypatch.setattr(capture_pg, "ID_MAX_AGE", 0.2)
    busy = asyncio.run(take(40))
    assert len(set(busy)) == 40
    assert capture_pg._block > 8  # blocks used up in time: the next one is larger
    asyncio.run(quiet_starts())
    # One start per block, the rest dropped unused: back to the smallest block.
    assert capture_pg._block == 8
    capture_pg._ids.clear()
