"""PostgreSQL over asyncio for the hot paths: one statement, no thread hop, no Django handler.

Django's database connections are synchronous: every query from async code costs a hop to a
thread (and, for sync views, a place in the process's single sync thread). The paths that run
thousands of times a second (a chat start's capture, a client's message) instead send their one
statement through a small ``psycopg_pool.AsyncConnectionPool`` of the running event loop.

Rules for callers:

* Only on PostgreSQL (``available()``); SQLite always takes the ORM path.
* One statement per state change (a data-modifying CTE), in autocommit: the statement is the
  transaction, so a failure leaves nothing half-written. When the statement changes nothing,
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
from contextlib import asynccontextmanager

import psycopg
from django.conf import settings
from psycopg_pool import AsyncConnectionPool

MAX_SIZE = int(os.environ.get("OPENLINE_DB_ASYNC_POOL_MAX", "") or 8)
# Seconds a caller waits for a connection (the same knob as Django's pool).
TIMEOUT = float(os.environ.get("OPENLINE_DB_POOL_TIMEOUT", "") or 2)

LOCK_TIMEOUT_MS = 1000

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


def _pool() -> AsyncConnectionPool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        for other in [known for known in _pools if known.is_closed()]:
            del _pools[other]  # pools of finished loops (tests start many)
        pool = AsyncConnectionPool(
            conninfo(),
            min_size=0,
            max_size=MAX_SIZE,
            timeout=TIMEOUT,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            open=False,
            name="openline-hot",
        )
        _pools[loop] = pool
    return pool


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
