"""When clients were last connected, written in batches so a reconnect storm is not a write storm.

Every widget that connects is noted in ``Visitor.last_seen_at`` (to the nearest ten minutes).
After a deploy or a Redis blip thousands reconnect within seconds; one UPDATE and commit each
would queue them all behind the database's WAL flushes. Connections are collected here, on the
server's event loop, and written once a second in one statement
(``actions.touch_visitors``). A process that dies loses at most a second of these notes, which
only say roughly when a client was last around.
"""

from __future__ import annotations

import asyncio
import logging

from django.utils import timezone

from openline.conversations import actions
from openline.conversations.actions.lifecycle import LAST_SEEN_PRECISION
from openline.conversations.protocol import db_async

logger = logging.getLogger(__name__)

FLUSH_EVERY = 1.0  # seconds

_pending: set[int] = set()
_flusher: asyncio.Task | None = None


def seen(visitor) -> None:
    """Note that ``visitor`` connected now (call on the server's event loop)."""
    global _flusher
    last = visitor.last_seen_at
    if last and timezone.now() - last < LAST_SEEN_PRECISION:
        return
    _pending.add(visitor.pk)
    loop = asyncio.get_running_loop()
    if _flusher is None or _flusher.done() or _flusher.get_loop() is not loop:
        _flusher = loop.create_task(_flush_soon())


async def _flush_soon() -> None:
    await asyncio.sleep(FLUSH_EVERY)
    while _pending:
        batch = list(_pending)[:5000]
        _pending.difference_update(batch)
        try:
            await db_async(actions.touch_visitors, parallel=True)(visitor_ids=batch)
        except Exception as exc:  # noqa: BLE001 - a lost "last seen" note must not hurt a chat
            logger.warning("last-seen update failed: %s", type(exc).__name__)
