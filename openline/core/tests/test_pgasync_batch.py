"""Group commit on the hot paths' pool: concurrent one-statement writes share one transaction.

``pgasync.fetchone_batched`` answers a caller only after the shared transaction committed; a
statement the server refuses rolls the shared transaction back and every statement of it runs
again alone, so each caller gets its own outcome and nothing accepted is lost; a connection
that dies mid-transaction is an error for every caller of it, never a silent success.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from django.db import connection

from openline.core import pgasync
from openline.testing.aio import run_async

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def probe(postgres_only):
    """A table of its own; its name."""
    name = f"pgasync_probe_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {name} (n int PRIMARY KEY, xid text NOT NULL)")
    yield name
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {name}")


def stored(table: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT n FROM {table} ORDER BY n")  # noqa: S608 - the test's own table
        return [row[0] for row in cursor.fetchall()]


def insert(table: str) -> str:
    return (
        f"INSERT INTO {table} (n, xid) VALUES ($1::int, pg_current_xact_id()::text)"  # noqa: S608
        " RETURNING n, xid"
    )


def gather(calls) -> list:
    async def run():
        try:
            return await asyncio.gather(*calls(), return_exceptions=True)
        finally:
            await pgasync.close()

    return run_async(run)


def test_statements_that_arrive_together_share_one_commit(probe):
    sql = insert(probe)
    answers = gather(lambda: [pgasync.fetchone_batched(sql, [n]) for n in range(1, 9)])
    assert [row[0] for row in answers] == list(range(1, 9))
    # One transaction for all eight (one WAL flush), and every answer came after it committed.
    assert len({row[1] for row in answers}) == 1
    assert stored(probe) == list(range(1, 9))


def test_more_than_a_batch_is_split_and_nothing_is_lost(probe):
    sql = insert(probe)
    count = pgasync.BATCH_MAX * 2 + 3
    answers = gather(lambda: [pgasync.fetchone_batched(sql, [n]) for n in range(count)])
    assert [row[0] for row in answers] == list(range(count))
    transactions = {row[1] for row in answers}
    assert 2 < len(transactions) < count
    assert stored(probe) == list(range(count))


def test_a_refused_statement_fails_alone_and_its_neighbours_are_stored(probe):
    sql = insert(probe)
    # 3 twice: the second copy violates the primary key and rolls the shared transaction back.
    values = [1, 2, 3, 3, 4]
    answers = gather(lambda: [pgasync.fetchone_batched(sql, [n]) for n in values])
    refused = [a for a in answers if isinstance(a, BaseException)]
    assert len(refused) == 1 and isinstance(refused[0], psycopg.errors.UniqueViolation)
    assert sorted(a[0] for a in answers if not isinstance(a, BaseException)) == [1, 2, 3, 4]
    assert stored(probe) == [1, 2, 3, 4]
    # Each ran again in a transaction of its own.
    assert len({a[1] for a in answers if not isinstance(a, BaseException)}) == 4


def test_a_connection_lost_mid_transaction_is_an_error_for_every_caller(probe):
    sql = insert(probe)
    killer = "SELECT pg_terminate_backend(pg_backend_pid()), 'killed'"

    def calls():
        return [
            pgasync.fetchone_batched(sql, [1]),
            pgasync.fetchone_batched(killer, []),
            pgasync.fetchone_batched(sql, [2]),
        ]

    answers = gather(calls)
    # Nobody is told "stored" for a transaction whose commit nobody saw, and nothing is
    # written twice: the statements are not run again after a lost connection.
    assert all(isinstance(a, psycopg.OperationalError) for a in answers), answers
    assert stored(probe) == []
