"""A database that is down, read-only or full answers 503 with Retry-After; nothing half-written.

The read-only and full cases run through the real widget start view on the test database,
made to refuse writes for real: SQLite's ``PRAGMA query_only`` / ``max_page_count`` (a real
SQLITE_READONLY / SQLITE_FULL), PostgreSQL's ``default_transaction_read_only`` (a real
read_only_sql_transaction) and, for "full", a trigger raising PostgreSQL's ``disk_full``
SQLSTATE (a real out-of-space needs a small filesystem: ``drills/drill_readonly.py`` does that).
"""

from __future__ import annotations

import sqlite3
import time

import psycopg
import pytest
from django.db import IntegrityError, InterfaceError, InternalError, OperationalError, connection
from django.test import Client
from redis.exceptions import ConnectionError as RedisConnectionError

from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Message, Visitor
from openline.core import unavailable
from openline.livechat.tests.helpers import accepted_for


def _wrapped(django_error, cause: BaseException) -> BaseException:
    try:
        raise django_error(str(cause)) from cause
    except django_error as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (OperationalError("connection refused"), unavailable.DOWN),
        (InterfaceError("connection already closed"), unavailable.DOWN),
        (
            _wrapped(InternalError, psycopg.errors.ReadOnlySqlTransaction("read-only")),
            unavailable.READ_ONLY,
        ),
        (_wrapped(OperationalError, psycopg.errors.DiskFull("no space")), unavailable.FULL),
        (
            _wrapped(OperationalError, sqlite3.OperationalError("database or disk is full")),
            unavailable.FULL,
        ),
        (
            _wrapped(
                OperationalError, sqlite3.OperationalError("attempt to write a readonly database")
            ),
            unavailable.READ_ONLY,
        ),
        (RedisConnectionError("Error 111 connecting"), unavailable.REALTIME),
        (_wrapped(InternalError, psycopg.errors.InFailedSqlTransaction("aborted")), None),
        (_wrapped(OperationalError, psycopg.errors.AdminShutdown("terminating")), "database"),
        (_wrapped(OperationalError, psycopg.errors.TooManyConnections("too many")), "database"),
        (_wrapped(OperationalError, psycopg.OperationalError("connection refused")), "database"),
        # A deadlock or a statement timeout is the query's problem, not an outage.
        (_wrapped(OperationalError, psycopg.errors.DeadlockDetected("deadlock")), None),
        (_wrapped(OperationalError, psycopg.errors.SerializationFailure("retry")), None),
        (_wrapped(OperationalError, psycopg.errors.QueryCanceled("timeout")), None),
        (IntegrityError("duplicate key"), None),
        (ValueError("not an outage"), None),
    ],
)
def test_classify_names_the_outage_or_nothing(exc, reason):
    assert unavailable.classify(exc) == reason


def test_breaker_opens_on_failure_and_closes_when_the_probe_reaches_the_database():
    answers = [RuntimeError("down"), RuntimeError("down"), None]

    def probe():
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    breaker = unavailable.Breaker(probe=probe, every=0.01)
    breaker.trip()
    assert breaker.is_open
    deadline = time.monotonic() + 5
    while breaker.is_open and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not breaker.is_open
    assert answers == []


def test_a_failure_opens_the_breaker_only_when_the_probe_cannot_reach_the_database_either():
    def reachable():
        return False

    def unreachable():
        raise OperationalError("connection refused")

    for probe, opens in ((reachable, False), (unreachable, True)):
        breaker = unavailable.Breaker(probe=probe, every=60)
        breaker.suspect()
        deadline = time.monotonic() + 5
        while breaker._checking and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert breaker.is_open is opens, probe.__name__
        breaker.reset()


@pytest.fixture
def open_breaker(monkeypatch):
    """The database is known down in this process (the probe never reaches it)."""

    def never():
        raise OperationalError("down")

    breaker = unavailable.Breaker(probe=never, every=60)
    monkeypatch.setattr(unavailable, "breaker", breaker)
    breaker.trip()
    yield breaker
    breaker.reset()


def test_while_the_database_is_known_down_every_entry_point_answers_503_at_once(open_breaker):
    client = Client()
    started = time.monotonic()
    page = client.get("/console/", HTTP_ACCEPT="text/html")
    api = client.get("/api/v1/conversations")
    widget = client.post("/widget/abc/start", b"{}", content_type="application/json")
    assert time.monotonic() - started < 1
    assert page.status_code == api.status_code == widget.status_code == 503
    for response in (page, api, widget):
        assert response["Retry-After"] == "5"
    assert page["Content-Type"].startswith("text/html")
    assert b"Temporarily unavailable" in page.content
    assert api.json() == {"code": "unavailable", "detail": unavailable.MESSAGES["database"]}
    assert widget.json() == {"error": "unavailable", "message": unavailable.MESSAGES["database"]}
    # Liveness and readiness still answer: the process is up, and /readyz says why not ready.
    assert client.get("/healthz").status_code == 200


LONG = "A question that takes a whole page. " * 110


def _counts() -> tuple[int, int, int, int]:
    return (
        Visitor.objects.count(),
        Conversation.objects.count(),
        Message.objects.count(),
        ConsentRecord.objects.count(),
    )


def _start(client: Client, channel, client_id: str, text: str = "Hello, can you help?"):
    accepted = accepted_for(channel)
    body = {
        "text": text,
        "client_id": client_id,
        "page_url": "https://shop.example/",
        "consent": {
            "version": accepted.version_id,
            "language": accepted.language,
            "sha256": accepted.sha256,
        },
    }
    return client.post(f"/widget/{channel.code}/start", body, content_type="application/json")


def _refuse_writes(kind: str) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            if kind == "read_only":
                cursor.execute("PRAGMA query_only = ON")
            else:
                cursor.execute("CREATE TABLE openline_test_filler (x BLOB)")
                cursor.execute("PRAGMA page_count")
                pages = cursor.fetchone()[0]
                cursor.execute(f"PRAGMA max_page_count = {pages}")
                # Use up the free pages (earlier tests' deleted rows) until SQLite is full.
                try:
                    while True:
                        cursor.execute("INSERT INTO openline_test_filler VALUES (zeroblob(500))")
                except OperationalError as exc:
                    assert unavailable.classify(exc) == unavailable.FULL
        elif kind == "read_only":
            cursor.execute("SET default_transaction_read_only = on")
        else:
            cursor.execute(
                "CREATE FUNCTION openline_test_full() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' "
                "USING ERRCODE = 'disk_full'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER openline_test_full BEFORE INSERT ON consent_consentrecord "
                "FOR EACH ROW EXECUTE FUNCTION openline_test_full()"
            )


def _allow_writes(kind: str) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA query_only = OFF")
            cursor.execute("PRAGMA max_page_count = 1073741823")
            cursor.execute("DROP TABLE IF EXISTS openline_test_filler")
        elif kind == "read_only":
            cursor.execute("SET default_transaction_read_only = off")
        else:
            cursor.execute("DROP TRIGGER openline_test_full ON consent_consentrecord")
            cursor.execute("DROP FUNCTION openline_test_full()")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["read_only", "full"])
def test_a_capture_on_a_database_that_refuses_writes_is_a_clear_503_and_nothing_is_half_written(
    channel, kind, own_cache
):
    client = Client()
    # Warm everything the start reads (and fill the page that SQLite's limit leaves) first.
    assert _start(client, channel, "warm-up").status_code == 201
    before = _counts()
    _refuse_writes(kind)
    try:
        # A long first message needs new pages: SQLite's page limit refuses it for certain.
        refused = _start(client, channel, "during", text=LONG)
    finally:
        _allow_writes(kind)
    assert refused.status_code == 503, refused.content
    assert refused["Retry-After"] == str(unavailable.RETRY_AFTER[kind])
    assert refused.json() == {"error": "unavailable", "message": unavailable.MESSAGES[kind]}
    assert _counts() == before, "a refused capture left rows behind"
    assert unavailable.recent_refusal() == kind
    # Writable again: the same start is captured whole.
    again = _start(client, channel, "during", text=LONG)
    assert again.status_code == 201, again.content
    assert _counts() == (before[0] + 1, before[1] + 1, before[2] + 1, before[3] + 1)
    unavailable._refusals.clear()
