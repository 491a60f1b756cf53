"""The reconnect lookup on PostgreSQL, from the event loop, for many widgets at once.

``resume.load_visitor`` reads a returning widget's visitor, channel and annotations with one
statement on Django's connection, from a worker thread. On PostgreSQL a process's reconnecting
widgets are looked up here instead: the same statement, with ``public_id = ANY(...)`` for every
widget of the channel that asked since the last statement went out, on the event loop's
autocommit pool (``openline.core.pgasync``; prepared on each connection's first use). So a
storm costs one round trip, one thread-free wait and one statement per batch, not per socket.
At most ``pgasync.MAX_SIZE`` statements are in flight per process; the others' widgets wait
for the next batch, as they would for a thread of the frame pool.

Rows are built into visitors by ``resume``'s own conversion; the tests compare both paths
column by column (``tests/test_resume_pg.py``). A database that cannot be reached raises
Django's ``OperationalError`` in every waiting socket (told ``unavailable``, closed with 1013);
any other refusal of a batch's statement sends each of its sockets to read alone through
Django (``ReadAlone``), and a row that cannot be converted fails only its own socket.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from django.db import OperationalError
from psycopg.types.string import TextLoader
from psycopg_pool import PoolTimeout

from openline.conversations.models import Visitor
from openline.core import pgasync, unavailable
from openline.livechat import resume

BATCH = 200  # widgets per statement at most


class _Lookups:
    """One event loop's waiting widgets, by channel code, and the statements in flight."""

    def __init__(self) -> None:
        self.waiting: dict[str, dict[uuid.UUID, list[asyncio.Future]]] = {}
        self.running = 0

    def ask(self, code: str, key: uuid.UUID) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self.waiting.setdefault(code, {}).setdefault(key, []).append(answer)
        if self.running < pgasync.MAX_SIZE:
            self.running += 1
            loop.create_task(self._run())
        return answer

    def _take(self) -> tuple[str, dict[uuid.UUID, list[asyncio.Future]]] | None:
        for code, keys in self.waiting.items():
            batch = {}
            for key in list(keys)[:BATCH]:
                batch[key] = keys.pop(key)
            if not keys:
                del self.waiting[code]
            return code, batch
        return None

    async def _run(self) -> None:
        try:
            while (taken := self._take()) is not None:
                code, batch = taken
                try:
                    found = await _select(code, list(batch))
                except BaseException as exc:
                    # An outage is every socket's answer; any other refusal of the shared
                    # statement sends each socket to read alone (ReadAlone).
                    outage = isinstance(exc, OperationalError) or not isinstance(exc, Exception)
                    told = exc if outage else ReadAlone(type(exc).__name__)
                    for answers in batch.values():
                        for answer in answers:
                            if not answer.done():
                                answer.set_exception(told)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for key, answers in batch.items():
                    for answer in answers:
                        if not answer.done():
                            _answer(answer, found.get(key))
        finally:
            self.running -= 1


class ReadAlone(Exception):
    """The shared statement was refused for a reason other than an outage: read this widget
    alone (``resume.load_visitor``), so one bad batch never fails all its sockets."""


def _answer(answer: asyncio.Future, row) -> None:
    """Give one socket its own visitor (it keeps and changes it), or its own error."""
    try:
        visitor = None if row is None else resume.visitor_from_row(row)
    except Exception as exc:  # noqa: BLE001 - this socket's row only; the others go on
        answer.set_exception(exc)
        return
    answer.set_result(visitor)


_lookups: dict[asyncio.AbstractEventLoop, _Lookups] = {}


def _of_loop() -> _Lookups:
    return pgasync.per_loop(_lookups, _Lookups)


async def _select(code: str, keys: list[uuid.UUID]) -> dict[uuid.UUID, tuple]:
    """Run the statement for ``keys`` on channel ``code``; return each found visitor's row."""
    sql = resume.statements()["tokens"]
    column = resume.PUBLIC_ID_COLUMN
    try:
        async with pgasync.connection() as conn:
            cursor = conn.cursor()
            # As Django's connections read it: JSON as text, for the fields' own converters.
            cursor.adapters.register_loader("jsonb", TextLoader)
            await cursor.execute(sql, [keys, code, *resume.flags()], prepare=True)
            rows = await cursor.fetchall()
    except (psycopg.OperationalError, PoolTimeout) as exc:
        if outage(exc):
            raise OperationalError(str(exc)) from exc
        raise  # a lock or statement timeout, a serialization failure: each widget reads alone
    return {row[column]: row for row in rows}


def outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot serve: no connection (no SQLSTATE), or what
    ``unavailable`` classifies so (shutting down, too many connections, read-only, full)."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None:
        return True
    return unavailable.classify(exc) is not None


async def aload_visitor(*, code: str, public_id: str) -> Visitor | None:
    """``resume.load_visitor`` from the event loop, batched with the process's other widgets."""
    key = resume.public_key(public_id)
    if key is None:
        return None
    return await _of_loop().ask(code, key)
