"""Notice when the channel layer (Redis) stops working, so websockets can say so and close.

Redis Pub/Sub drops what is published while a subscriber is cut off, and channels_redis
reconnects without telling anyone: a socket would stay open but deaf. So each server process
sends itself a message through the layer every ``EVERY`` seconds; when that fails or takes
longer than ``TIMEOUT``, every registered socket is told (``error`` frame ``unavailable``) and
closed with 1013, and new sockets are refused the same way until the round trip works again.
Clients reconnect with back-off and resynchronise from their last message id, so nothing
stored is missed. Without ``REDIS_URL`` (the in-memory layer) nothing can go down: no watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

EVERY = 1.0
TIMEOUT = 3.0


class Watched(Protocol):
    async def layer_unavailable(self) -> None: ...


class LayerWatch:
    """Per event loop: the layer's state and the sockets to close when it fails."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        roundtrip: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.loop = loop
        self.down = False
        self.sockets: weakref.WeakSet[Any] = weakref.WeakSet()
        self._channel: str | None = None
        self._roundtrip = roundtrip or self._layer_roundtrip
        self.task = loop.create_task(self._run())

    def usable(self) -> bool:
        return not self.loop.is_closed() and not self.task.done()

    async def _layer_roundtrip(self) -> None:
        layer = get_channel_layer()
        if self._channel is None:
            self._channel = await layer.new_channel("layerwatch.")
        await layer.send(self._channel, {"type": "layerwatch.ping"})
        await layer.receive(self._channel)

    async def check(self) -> bool:
        """Run one round trip; mark the layer down (closing every socket) or up. Return up."""
        try:
            await asyncio.wait_for(self._roundtrip(), timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failure: Redis down, hung, refused
            # A cancelled receive lets go of its subscription; take a fresh channel next time.
            self._channel = None
            if isinstance(exc, TimeoutError) and not self.down and await self._redis_answers():
                # Slow, not down: in a reconnect storm the layer's one subscriber connection
                # carries thousands of SUBSCRIBEs ahead of this message. Closing every socket
                # then would only start the storm again.
                logger.info("channel layer slow, Redis answers PING: websockets stay open")
                return True
            if not self.down:
                logger.warning("channel layer unreachable (%s): closing websockets", exc)
                self.down = True
                await self._close_all()
            return False
        if self.down:
            logger.warning("channel layer reachable again")
            self.down = False
        return True

    async def _redis_answers(self) -> bool:
        """Ask Redis itself (a connection of its own, not the layer's busy one) for a PING."""
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(
            settings.CONFIG.redis_url or "", socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        try:
            return bool(await asyncio.wait_for(client.ping(), timeout=TIMEOUT))
        except Exception:  # noqa: BLE001 - refused, hung, timed out: Redis is not answering
            return False
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _close_all(self) -> None:
        sockets = list(self.sockets)
        self.sockets = weakref.WeakSet()
        results = await asyncio.gather(
            *(socket.layer_unavailable() for socket in sockets), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):
                logger.info("closing a websocket failed: %s", type(result).__name__)

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(EVERY)


_watches: dict[asyncio.AbstractEventLoop, LayerWatch] = {}


def enabled() -> bool:
    """Tell whether the channel layer can go down (Redis is configured)."""
    return bool(getattr(settings, "CONFIG", None) and settings.CONFIG.redis_url)


def watch() -> LayerWatch | None:
    """Return this event loop's watch, started on first use; None without Redis."""
    if not enabled():
        return None
    loop = asyncio.get_running_loop()
    current = _watches.get(loop)
    if current is None or not current.usable():
        for old in [k for k in _watches if k.is_closed()]:
            del _watches[old]
        current = _watches[loop] = LayerWatch(loop)
    return current


def register(socket: Watched) -> bool:
    """Watch ``socket``; return False when the layer is known down (refuse the socket)."""
    current = watch()
    if current is None:
        return True
    if current.down:
        return False
    current.sockets.add(socket)
    return True


def unregister(socket: Watched) -> None:
    """Stop watching ``socket`` (it closed)."""
    with contextlib.suppress(RuntimeError):
        current = _watches.get(asyncio.get_running_loop())
        if current is not None:
            current.sockets.discard(socket)
