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


@pytest.fixture
def parent_child(postgres_only):
    """A parent table with rows 1 and 2, and a child whose foreign key is checked at commit
    (as Django declares every foreign key: DEFERRABLE INITIALLY DEFERRED)."""
    tag = uuid.uuid4().hex[:12]
    parent, child = f"pgasync_parent_{tag}", f"pgasync_child_{tag}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {parent} (id int PRIMARY KEY)")
        cursor.execute(f"INSERT INTO {parent} VALUES (1), (2)")
        cursor.execute(
            f"CREATE TABLE {child} (n int PRIMARY KEY, parent int REFERENCES {parent}(id)"
            " DEFERRABLE INITIALLY DEFERRED)"
        )
    yield parent, child
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {child}")
        cursor.execute(f"DROP TABLE {parent}")


def child_insert(child: str) -> str:
    return f"INSERT INTO {child} (n, parent) VALUES ($1::int, $2::int) RETURNING n"  # noqa: S608


def test_a_refusal_at_commit_fails_alone_and_is_no_outage(parent_child):
    _parent, child = parent_child
    sql = child_insert(child)
    answers = gather(
        lambda: [pgasync.fetchone_batched(sql, v) for v in ([10, 1], [11, 99], [12, 2])]
    )
    assert answers[0] == (10,) and answers[2] == (12,)
    # The deferred check refused 11 at COMMIT: its own SQLSTATE, not a lost connection.
    assert isinstance(answers[1], psycopg.errors.ForeignKeyViolation)
    assert stored(child) == [10, 12]


def test_a_lock_wait_at_commit_is_the_locked_statements_refusal_only(parent_child):
    parent, child = parent_child
    sql = child_insert(child)
    holder = psycopg.connect(connection.settings_dict and pgasync.conninfo(), autocommit=False)
    try:
        # What an administrator's consent-settings change holds on the channel row.
        holder.execute(f"SELECT * FROM {parent} WHERE id = 2 FOR UPDATE")  # noqa: S608
        answers = gather(
            lambda: [pgasync.fetchone_batched(sql, v) for v in ([20, 1], [21, 2], [22, 1])]
        )
    finally:
        holder.rollback()
        holder.close()
    assert answers[0] == (20,) and answers[2] == (22,)
    assert isinstance(answers[1], psycopg.errors.LockNotAvailable)
    assert stored(child) == [20, 22]


def _stub_settle(monkeypatch, gate_of):
    """Replace the database with a stub: each batch waits for its gate, then answers."""
    sent: list[str] = []

    async def settle(batch):
        await gate_of()
        for item in batch:
            sent.append(item.sql)
            item.future.set_result((item.sql,))

    monkeypatch.setattr(pgasync, "_settle", settle)
    return sent


def test_a_statement_queued_as_the_flights_finish_is_still_sent(monkeypatch):
    async def run():
        gate = asyncio.get_running_loop().create_future()
        _stub_settle(monkeypatch, lambda: gate)
        batcher = pgasync._Batcher()
        first = asyncio.ensure_future(batcher.fetchone("a", []))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(batcher.fetchone("b", []))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        gate.set_result(None)  # both flights finish in the next iteration ...
        late = asyncio.ensure_future(batcher.fetchone("late", []))  # ... this comes right after
        return await first, await second, await asyncio.wait_for(late, 2)

    assert run_async(run) == (("a",), ("b",), ("late",))


def test_a_statement_queued_too_long_is_withdrawn_unsent(monkeypatch):
    monkeypatch.setattr(pgasync, "TIMEOUT", 0.2)

    async def run():
        gate = asyncio.get_running_loop().create_future()
        sent = _stub_settle(monkeypatch, lambda: gate)
        batcher = pgasync._Batcher()
        busy = []
        for n in range(pgasync.BATCH_FLIGHTS):  # every flight busy with a batch of its own
            busy.append(asyncio.ensure_future(batcher.fetchone(f"busy{n}", [])))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        with pytest.raises(pgasync.PoolTimeout):
            await batcher.fetchone("late", [])
        gate.set_result(None)
        await asyncio.gather(*busy, return_exceptions=True)
        await asyncio.sleep(0.05)
        return sent

    sent = run_async(run)
    assert "late" not in sent and sorted(sent) == ["busy0", "busy1"]


def test_a_caller_cancelled_while_queued_is_never_sent(monkeypatch):
    async def run():
        gate = asyncio.get_running_loop().create_future()
        sent = _stub_settle(monkeypatch, lambda: gate)
        batcher = pgasync._Batcher()
        busy = []
        for n in range(pgasync.BATCH_FLIGHTS):
            busy.append(asyncio.ensure_future(batcher.fetchone(f"busy{n}", [])))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        gone = asyncio.ensure_future(batcher.fetchone("gone", []))
        await asyncio.sleep(0)
        gone.cancel()  # the client went away while its statement waited for a flight
        await asyncio.sleep(0)
        gate.set_result(None)
        await asyncio.gather(*busy)
        await asyncio.sleep(0.05)
        return sent, gone.cancelled(), len(batcher.pending)

    sent, cancelled, left = run_async(run)
    assert cancelled and left == 0
    assert "gone" not in sent and sorted(sent) == ["busy0", "busy1"]
