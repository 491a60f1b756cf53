"""PostgreSQL over asyncio for the hot paths: one statement, no thread hop, no Django handler.

Django's database connections are synchronous: every query from async code costs a hop to a
thread (and, for sync views, a place in the process's single sync thread). The paths that run
thousands of times a second (a chat start's capture, a client's message) instead send their one
statement through a small ``psycopg_pool.AsyncConnectionPool`` of the running event loop.

Rules for callers:

* Only on PostgreSQL (``available()``); SQLite always takes the ORM path.
* One statement per state change (a data-modifying CTE), in autocommit: the statement is the
  transaction, so a failure leaves nothing half-written. ``fetchone_batched`` (group commit)
  sends the statements that arrive together in one pipeline, committed by one Sync; a refused
  one rolls them back and each runs again alone. Only for statements that insert new rows (a
  chat start): statements that lock existing rows (a message updating its conversation) could
  deadlock across processes' shared transactions and stay one transaction each. When the statement changes nothing,
  the caller takes the ORM path, which tells why — exactly as ``store_pg`` does.
* Connections speak UTC, like Django's (``USE_TZ``); timestamps go in as aware datetimes.
* ``psycopg.OperationalError`` without a SQLSTATE and ``psycopg_pool.PoolTimeout`` mean the
  database cannot be reached: callers answer 503 through ``openline.core.unavailable``, never
  500. A lock wait longer than ``LOCK_TIMEOUT_MS`` fails the statement (55P03, nothing written):
  callers take the ORM path then.

The pool has its own size (``OPENLINE_DB_ASYNC_POOL_MAX``, default 8 per process) next to
Django's (``OPENLINE_DB_POOL_MAX``); both count towards PostgreSQL's ``max_connections``.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import psycopg
from django.conf import settings
from psycopg_pool import AsyncConnectionPool, PoolTimeout

MAX_SIZE = int(os.environ.get("OPENLINE_DB_ASYNC_POOL_MAX", "") or 8)
# Seconds a caller waits for a connection (the same knob as Django's pool).
TIMEOUT = float(os.environ.get("OPENLINE_DB_POOL_TIMEOUT", "") or 2)

LOCK_TIMEOUT_MS = 1000

T = TypeVar("T")

_pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool] = {}


def available() -> bool:
    """True when the default database is PostgreSQL (the hot paths' statements are its SQL)."""
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def conninfo() -> str:
    """The default database's connection string, built from Django's settings."""
    db = settings.DATABASES["default"]
    params = {
        "dbname": db.get("NAME") or "",
        "user": db.get("USER") or "",
        "password": db.get("PASSWORD") or "",
        "host": db.get("HOST") or "",
        "port": str(db.get("PORT") or ""),
    }
    for key, value in (db.get("OPTIONS") or {}).items():
        if key in ("pool", "context", "cursor_factory", "server_side_binding", "assume_role"):
            continue
        if isinstance(value, str | int):
            params[key] = str(value)
    # A row lock held elsewhere (a long erasure, a migration) must not pin this small pool's
    # connections: after LOCK_TIMEOUT_MS the statement gives up (55P03) and the caller takes
    # the ORM path, which waits in Django's pool.
    params["options"] = (
        params.get("options", "") + f" -c TimeZone=UTC -c lock_timeout={LOCK_TIMEOUT_MS}"
    ).strip()
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v != ""})


def per_loop(registry: dict, make: Callable[[], T]) -> T:
    """The running event loop's entry of ``registry``, made on first use; entries of finished
    loops are dropped then (tests start many loops)."""
    loop = asyncio.get_running_loop()
    value = registry.get(loop)
    if value is None:
        for other in [known for known in registry if known.is_closed()]:
            del registry[other]
        value = registry[loop] = make()
    return value


def _pool() -> AsyncConnectionPool:
    return per_loop(
        _pools,
        lambda: AsyncConnectionPool(
            conninfo(),
            min_size=0,
            max_size=MAX_SIZE,
            timeout=TIMEOUT,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            open=False,
            name="openline-hot",
        ),
    )


@asynccontextmanager
async def connection():
    """Lend an autocommit connection of this loop's pool (opened on first use)."""
    pool = _pool()
    if pool.closed:
        await pool.open(wait=False)
    async with pool.connection() as conn:
        yield conn


async def close() -> None:
    """Close this loop's pool (at shutdown, and between tests)."""
    loop = asyncio.get_running_loop()
    pool = _pools.pop(loop, None)
    if pool is not None:
        await pool.close()


# ----- group commit: concurrent one-statement writes of a loop share one transaction --------

# At most this many statements per shared transaction, and this many transactions in flight per
# event loop (the rest wait and join the next one).
BATCH_MAX = int(os.environ.get("OPENLINE_DB_BATCH_MAX", "") or 16)
BATCH_FLIGHTS = int(os.environ.get("OPENLINE_DB_BATCH_FLIGHTS", "") or 2)


class _Queued:
    __slots__ = ("sql", "values", "future")

    def __init__(self, sql: str, values: list, future: asyncio.Future) -> None:
        self.sql, self.values, self.future = sql, values, future


class _Batcher:
    def __init__(self) -> None:
        self.pending: deque[_Queued] = deque()
        self.flights = 0
        self.tasks: set[asyncio.Task] = set()  # held here: a task nobody holds may be collected

    async def fetchone(self, sql: str, values: list):
        item = _Queued(sql, values, asyncio.get_running_loop().create_future())
        self.pending.append(item)
        if self.flights < BATCH_FLIGHTS:
            self.flights += 1
            task = asyncio.ensure_future(self._flush())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        try:
            done, _ = await asyncio.wait({item.future}, timeout=TIMEOUT)
        except asyncio.CancelledError:
            self._withdraw(item)  # the caller is gone: a statement still queued is never sent
            raise
        if not done:
            if self._withdraw(item):
                # As long as a wait for a pooled connection: nothing was sent.
                raise PoolTimeout(f"waited {TIMEOUT:g} s for a shared transaction")
            return await item.future  # already sent: its outcome is the answer
        return item.future.result()

    def _withdraw(self, item: _Queued) -> bool:
        try:
            self.pending.remove(item)  # by identity: _Queued has no __eq__
        except ValueError:
            return False
        return True

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch = [self.pending.popleft() for _ in range(min(BATCH_MAX, len(self.pending)))]
                await _settle(batch)
        finally:
            # In the same step as the last look at ``pending``: a statement queued after it
            # always finds a free flight.
            self.flights -= 1


def _rolled_back(exc: BaseException) -> bool:
    """True when the server refused the transaction (nothing of it committed, connection fine)."""
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, psycopg.Error) and bool(state) and not state.startswith(("08", "57"))


async def _alone(item: _Queued) -> None:
    try:
        async with connection() as conn:
            cursor = psycopg.AsyncRawCursor(conn)
            await cursor.execute(item.sql, item.values)
            row = await cursor.fetchone()
    except BaseException as exc:  # noqa: BLE001 - handed to the caller
        if not item.future.done():
            item.future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
    else:
        if not item.future.done():
            item.future.set_result(row)


async def _settle(batch: list[_Queued]) -> None:
    if len(batch) == 1:
        await _alone(batch[0])
        return
    try:
        async with connection() as conn:
            cursors = []
            # An explicit transaction inside the pipeline: a refusal at COMMIT (a deferred
            # foreign-key check, a lock wait behind it) arrives with its SQLSTATE and leaves the
            # connection idle, like a refusal of one statement.
            async with conn.pipeline(), conn.transaction():
                for item in batch:
                    cursor = psycopg.AsyncRawCursor(conn)
                    await cursor.execute(item.sql, item.values)
                    cursors.append(cursor)
            rows = [await cursor.fetchone() for cursor in cursors]
    except BaseException as exc:  # noqa: BLE001 - each caller learns its own outcome
        if isinstance(exc, Exception) and _rolled_back(exc):
            # One statement (or the commit) was refused: the whole transaction was rolled back.
            # Each statement runs again alone, all at once, so each caller gets its own answer
            # within one more statement's time.
            await asyncio.gather(*(_alone(item) for item in batch))
            return
        for item in batch:
            if not item.future.done():
                item.future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
        return
    for item, row in zip(batch, rows, strict=True):
        if not item.future.done():
            item.future.set_result(row)


_batchers: dict[asyncio.AbstractEventLoop, _Batcher] = {}


async def fetchone_batched(sql: str, values: list):
    """Run a one-statement write and return its first row, sharing a commit with its neighbours.

    Statements that arrive on this loop while earlier transactions are in flight are sent
    together in pipeline mode in one transaction (one commit, one WAL flush for all). The
    caller's row is returned only after that commit. When the server refuses any of them (at
    the statement or at the commit), the shared transaction is rolled back and each statement
    runs again alone, in its own transaction. A connection lost meanwhile is an error for each
    caller (as for one statement, whether the commit happened is then unknown). A statement
    still queued after ``TIMEOUT`` seconds, or whose caller was cancelled, is withdrawn unsent
    (``PoolTimeout``, as when no pooled connection is free). Only for statements that take no
    row locks others could take in another order (inserts of new rows), so a shared
    transaction cannot deadlock with another.
    """
    return await per_loop(_batchers, _Batcher).fetchone(sql, values)
