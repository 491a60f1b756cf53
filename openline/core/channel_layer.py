"""The Redis Pub/Sub channel layer with one subscription per process for its sockets' channels.

``channels_redis.pubsub.RedisPubSubChannelLayer`` subscribes every socket's own channel name
in Redis (``new_channel``: one SUBSCRIBE, and an UNSUBSCRIBE when it closes) and writes every
group subscription as a command of its own. In a reconnection storm that is two Redis commands,
two confirmations to parse and two socket writes per connecting widget, on the one connection
that also carries every event.

Here, as channels_redis' list-based layer does it, a socket's channel name carries its
process's inbox: ``<prefix>specific.<inbox>!<random>``. The process subscribes once to the
inbox ``<prefix>specific.<inbox>!``; ``send`` publishes to the inbox with the full channel name
in front of the message, and the process's reader hands it to that socket's queue. Groups work
as in channels_redis' Pub/Sub layer: one Redis subscription per group per process, however many
of its sockets are members (the last ``group_discard`` unsubscribes). Subscriptions and
unsubscriptions asked for while one is being written go out together, in order, as one
SUBSCRIBE or UNSUBSCRIBE with many names; each caller learns the outcome of its own step, and a
group that a socket joins while its last member's UNSUBSCRIBE is in flight is subscribed again
after it. Publishes keep their order (one at a time per host), as channels_redis' do.

Everything else is channels_redis' Pub/Sub layer unchanged: messages to names without ``!``
(named channels, groups), at-most-once delivery, sharding over several hosts, resubscribing
everything (the inbox included) when the connection to Redis is made again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from typing import Any

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close, decode_hosts

logger = logging.getLogger(__name__)

# Between the full channel name and the serialised message in an inbox message; channel
# names cannot contain it.
SEPARATOR = b"\0"


class BatchingShardConnection(RedisSingleShardConnection):
    """One Redis host: subscriptions written in batches, inbox messages routed to sockets."""

    def __init__(self, host, channel_layer) -> None:
        super().__init__(host, channel_layer)
        # Operations (kind, name, the future its caller waits on) for the next write, in order.
        self._batch: list[tuple[str, str, asyncio.Future]] | None = None
        # Publishes go out one after another, in the order they were asked for (as under
        # channels_redis' shard lock), but never wait behind a batch of subscriptions.
        self._publish_lock = asyncio.Lock()

    async def subscribe(self, channel) -> None:
        if channel in self._subscribed_to and self._batch is None and not self._lock.locked():
            return  # subscribed, and no write pending or in flight that could undo it
        await self._enqueue("subscribe", channel)

    async def unsubscribe(self, channel) -> None:
        await self._enqueue("unsubscribe", channel)

    def _enqueue(self, kind: str, channel: str) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if self._batch is None:
            self._batch = []
            loop.create_task(self._write_batch())
        done = loop.create_future()
        self._batch.append((kind, channel, done))
        return done

    async def _write_batch(self) -> None:
        async with self._lock:
            # Everything asked for until the lock was free goes out now.
            if self._batch is None:
                return
            operations, self._batch = self._batch, None
            try:
                self._ensure_redis()
                self._ensure_receiver()
            except BaseException as exc:
                _settle([done for _, _, done in operations], exc)
                if not isinstance(exc, Exception):
                    raise
                return
            for kind, run in itertools.groupby(operations, key=lambda op: op[0]):
                step = list(run)
                names = list(dict.fromkeys(name for _, name, _ in step))
                try:
                    if kind == "subscribe":
                        names = [n for n in names if n not in self._subscribed_to]
                        if names:
                            await self._pubsub.subscribe(*names)
                            self._subscribed_to.update(names)
                    else:
                        names = [n for n in names if n in self._subscribed_to]
                        if names:
                            await self._pubsub.unsubscribe(*names)
                            self._subscribed_to.difference_update(names)
                except BaseException as exc:
                    # Only this step's callers fail; the later steps are still written.
                    _settle([done for _, _, done in step], exc)
                    if not isinstance(exc, Exception):
                        _settle([done for _, _, done in operations], exc)
                        raise
                    continue
                _settle([done for _, _, done in step], None)

    async def publish(self, channel, message) -> None:
        # Over the connection pool, not the subscriber connection.
        self._ensure_redis()
        async with self._publish_lock:
            await self._redis.publish(channel, message)

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish several messages in one round trip (a pipeline, not a transaction), in order.

        Under the same lock as ``publish``: what was asked for before goes out before, and
        what is asked for meanwhile goes out after.
        """
        if len(messages) == 1:
            await self.publish(*messages[0])
            return
        self._ensure_redis()
        async with self._publish_lock:
            pipe = self._redis.pipeline(transaction=False)
            for channel, data in messages:
                pipe.publish(channel, data)
            try:
                await pipe.execute()
                return
            except Exception as exc:  # noqa: BLE001 - each message gets its own attempt below
                logger.warning(
                    "channel layer: a pipeline of %d publishes failed (%s); sending each alone",
                    len(messages),
                    type(exc).__name__,
                )
            # The pipeline failed as a whole (a dropped connection): each message again on
            # its own, as separate publishes would have been, so one bad moment loses as little
            # as it did before. One the failed pipeline had delivered may arrive twice; the
            # widget and the inbox keep each message once, by id.
            failed: BaseException | None = None
            for channel, data in messages:
                try:
                    await self._redis.publish(channel, data)
                except Exception as exc:  # noqa: BLE001 - the first failure is raised
                    failed = failed or exc
            if failed is not None:
                raise failed

    async def flush(self) -> None:
        pending, self._batch = self._batch or [], None
        _settle([done for _, _, done in pending], LayerFlushed("the channel layer was flushed"))
        await super().flush()

    def _receive_message(self, message) -> None:
        if message is None:
            return
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        if name in self.channel_layer.inboxes:
            target, _, data = message["data"].partition(SEPARATOR)
            queue = self.channel_layer.channels.get(target.decode())
            if queue is not None:  # a socket that closed meanwhile: dropped, as Pub/Sub does
                queue.put_nowait(data)
            return
        super()._receive_message(message)


class LayerFlushed(Exception):
    """A subscription asked for before ``flush()`` was dropped with everything else."""


def _settle(futures: list[asyncio.Future], error: BaseException | None) -> None:
    """Give each waiting caller its result (None) or the error; a settled one is left alone."""
    for done in futures:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
            done.exception()  # its caller sees it; it must not also be logged as unretrieved


class ProcessPubSubLoopLayer(RedisPubSubLoopLayer):
    """The layer of one event loop: an inbox per ``new_channel`` prefix, groups shared."""

    def __init__(self, hosts=None, *args: Any, **kwargs: Any) -> None:
        super().__init__(hosts, *args, **kwargs)
        self._shards = [BatchingShardConnection(host, self) for host in decode_hosts(hosts)]
        self.inbox_id = uuid.uuid4().hex
        self.inboxes: set[str] = set()

    def _inbox(self, prefix: str) -> str:
        return f"{self.prefix}{prefix}{self.inbox_id}!"

    async def new_channel(self, prefix="specific.") -> str:
        inbox = self._inbox(prefix)
        if inbox not in self.inboxes:
            await self._get_shard(inbox).subscribe(inbox)
            self.inboxes.add(inbox)
        channel = f"{inbox}{uuid.uuid4().hex}"
        self.channels[channel] = asyncio.Queue()
        return channel

    async def send(self, channel, message) -> None:
        if "!" not in channel:
            await super().send(channel, message)
            return
        inbox = channel[: channel.index("!") + 1]
        data = channel.encode() + SEPARATOR + self.channel_layer.serialize(message)
        await self._get_shard(inbox).publish(inbox, data)

    async def group_send_many(self, messages: list[tuple[str, dict]]) -> None:
        """``group_send`` for each (group, message), in order, one Redis round trip per host.

        A failure on one host leaves the others' messages sent; the first failure is raised.
        """
        by_shard: dict[BatchingShardConnection, list[tuple[str, bytes]]] = {}
        for group, message in messages:
            name = self._get_group_channel_name(group)
            shard = self._get_shard(name)
            by_shard.setdefault(shard, []).append((name, self.channel_layer.serialize(message)))
        results = await asyncio.gather(
            *(shard.publish_many(items) for shard, items in by_shard.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def receive(self, channel):
        if "!" not in channel:
            return await super().receive(channel)
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue()
        try:
            message = await queue.get()
        except (asyncio.CancelledError, TimeoutError, GeneratorExit):
            # The consumer is gone (as in channels_redis): forget its queue. The inbox stays
            # subscribed for the process's other sockets.
            self.channels.pop(channel, None)
            raise
        return self.channel_layer.deserialize(message)

    async def flush(self) -> None:
        self.inboxes = set()
        await super().flush()


class ProcessPubSubChannelLayer(RedisPubSubChannelLayer):
    """``RedisPubSubChannelLayer`` with one inbox subscription per process (see the module)."""

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        try:
            layer = self._layers[loop]
        except KeyError:
            layer = ProcessPubSubLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer
