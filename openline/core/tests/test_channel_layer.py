"""The Pub/Sub channel layer with one inbox per process, against a real Redis.

Sockets' own channels cost Redis one subscription per process, not one each; a direct send
reaches a channel in another process; groups are subscribed once per process and let go by
the last ``group_discard``; after Redis comes back the inbox and the groups are subscribed
again. Server processes on this layer (the default with REDIS_URL) are tested in
``livechat/tests/test_two_processes.py`` (fan-out across processes),
``accounts/tests/test_shared_sessions.py`` (logout closing a socket in another process),
``livechat/tests/test_outage_servers.py`` and the ``redis_outage`` drill (1013 on Redis loss).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from openline.core.channel_layer import ProcessPubSubChannelLayer

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[3]


def _run(make_coroutine, timeout: float = 60):
    """Run a coroutine on a fresh event loop in its own thread (as the layer's users do)."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(asyncio.wait_for(make_coroutine(), timeout))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout + 5)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _layer(url: str, prefix: str) -> ProcessPubSubChannelLayer:
    return ProcessPubSubChannelLayer(hosts=[{"address": url}], prefix=prefix)


def _subscribed(url: str, prefix: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        return sorted(name.decode() for name in client.pubsub_channels(f"{prefix}*"))
    finally:
        client.close()


async def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_sockets_share_one_subscription_and_groups_are_let_go_by_the_last_member(redis_url):
    prefix = f"test-layer-{uuid.uuid4().hex[:8]}."

    async def body() -> None:
        layer = _layer(redis_url, prefix)
        channels = [await layer.new_channel() for _ in range(50)]
        inbox = channels[0][: channels[0].index("!") + 1]
        await _wait_for(lambda: _subscribed(redis_url, prefix) == [inbox])
        # A direct send reaches its own socket only.
        await layer.send(channels[7], {"type": "hello", "n": 7})
        assert await asyncio.wait_for(layer.receive(channels[7]), 5) == {"type": "hello", "n": 7}
        other = asyncio.ensure_future(layer.receive(channels[8]))
        await asyncio.sleep(0.2)
        assert not other.done()
        other.cancel()
        # Two members, one Redis subscription; both get a group message.
        await layer.group_add("room", channels[1])
        await layer.group_add("room", channels[2])
        group = f"{prefix}__group__room"
        await _wait_for(lambda: group in _subscribed(redis_url, prefix))
        await layer.group_send("room", {"type": "event", "text": "one"})
        for channel in channels[1:3]:
            assert (await asyncio.wait_for(layer.receive(channel), 5))["text"] == "one"
        # The first member leaves: the other still gets events; the last one lets go.
        await layer.group_discard("room", channels[1])
        await layer.group_send("room", {"type": "event", "text": "two"})
        assert (await asyncio.wait_for(layer.receive(channels[2]), 5))["text"] == "two"
        assert group in _subscribed(redis_url, prefix)
        await layer.group_discard("room", channels[2])
        await _wait_for(lambda: _subscribed(redis_url, prefix) == [inbox])
        await layer.flush()

    _run(body)


def test_many_group_joins_at_once_go_out_as_one_command(redis_url):
    prefix = f"test-layer-{uuid.uuid4().hex[:8]}."

    async def body() -> list:
        layer = _layer(redis_url, prefix)
        channels = [await layer.new_channel() for _ in range(20)]
        shard = layer._get_layer()._shards[0]
        written: list[tuple] = []
        subscribe = shard._pubsub.subscribe

        async def counting(*names):
            written.append(names)
            return await subscribe(*names)

        shard._pubsub.subscribe = counting
        await asyncio.gather(*(layer.group_add(f"g{i}", c) for i, c in enumerate(channels)))
        await _wait_for(lambda: len(_subscribed(redis_url, prefix)) == 21)
        for i, channel in enumerate(channels):
            await layer.group_send(f"g{i}", {"type": "event", "n": i})
            assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == i
        await layer.flush()
        return written

    written = _run(body)
    assert len(written) == 1 and len(written[0]) == 20


CHILD = """
import asyncio, json, sys
from openline.core.channel_layer import ProcessPubSubChannelLayer

async def main():
    layer = ProcessPubSubChannelLayer(hosts=[{"address": sys.argv[1]}], prefix=sys.argv[2])
    channel = await layer.new_channel()
    await layer.group_add("shared", channel)
    print(json.dumps({"channel": channel}), flush=True)
    for _ in range(2):
        message = await asyncio.wait_for(layer.receive(channel), 20)
        print(json.dumps(message), flush=True)
    await layer.group_discard("shared", channel)
    print(json.dumps({"left": True}), flush=True)
    await asyncio.sleep(0.5)

asyncio.run(main())
"""


def test_a_direct_send_and_a_group_reach_a_socket_of_another_process(redis_url):
    prefix = f"test-layer-{uuid.uuid4().hex[:8]}."
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, redis_url, prefix],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        channel = json.loads(child.stdout.readline())["channel"]

        async def body() -> None:
            layer = _layer(redis_url, prefix)
            await _wait_for(lambda: f"{prefix}__group__shared" in _subscribed(redis_url, prefix))
            await layer.send(channel, {"type": "direct", "text": "to you"})
            await layer.group_send("shared", {"type": "event", "text": "to all"})
            await layer.flush()

        _run(body)
        got = [json.loads(child.stdout.readline()) for _ in range(3)]
        assert got == [
            {"type": "direct", "text": "to you"},
            {"type": "event", "text": "to all"},
            {"left": True},
        ]
        assert child.wait(timeout=10) == 0
        # The other process left the group and is gone: nothing of it stays subscribed.
        assert _subscribed(redis_url, prefix) == []
    finally:
        child.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_after_redis_comes_back_the_inbox_and_groups_work_again(tmp_path):
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    command += ["--dir", str(tmp_path)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    prefix = "test-layer."

    def restart() -> None:
        nonlocal server
        server.terminate()
        server.wait(timeout=10)
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)

    async def body() -> None:
        await _wait_for(lambda: _answers(url), 10)
        layer = _layer(url, prefix)
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await layer.send(channel, {"type": "before"})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "before"
        await asyncio.get_running_loop().run_in_executor(None, restart)
        await _wait_for(lambda: _answers(url), 10)
        # The layer's reader reconnects and subscribes everything again.
        await _wait_for(lambda: len(_subscribed(url, prefix)) == 2, 15)
        # A publish on a pooled connection that Redis closed fails once (as in channels_redis).
        for attempt in range(3):
            try:
                await layer.send(channel, {"type": "after"})
                break
            except redis.ConnectionError:
                if attempt == 2:
                    raise
        await layer.group_send("room", {"type": "group after"})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "after"
        assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "group after"
        await layer.flush()

    try:
        _run(body)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.mark.parametrize("turns", [1, 2, 3, 4])
def test_a_group_joined_while_its_last_members_unsubscribe_is_in_flight_stays_subscribed(
    redis_url, turns
):
    prefix = f"test-layer-{uuid.uuid4().hex[:8]}."

    async def body():
        layer = _layer(redis_url, prefix)
        old, new = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("g", old)
        leaving = asyncio.ensure_future(layer.group_discard("g", old))
        for _ in range(turns):  # the UNSUBSCRIBE is being written meanwhile
            await asyncio.sleep(0)
        await layer.group_add("g", new)
        await leaving
        await _wait_for(lambda: f"{prefix}__group__g" in _subscribed(redis_url, prefix))
        await layer.group_send("g", {"type": "x.event", "n": 1})
        got = await asyncio.wait_for(layer.receive(new), 5)
        await layer.flush()
        return got

    assert _run(body) == {"type": "x.event", "n": 1}


def test_a_failed_step_fails_only_its_callers_and_later_steps_are_still_written(redis_url):
    prefix = f"test-layer-{uuid.uuid4().hex[:8]}."

    async def body():
        layer = _layer(redis_url, prefix)
        a, b = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("c", a)
        shard = layer._get_layer()._shards[0]
        real = shard._pubsub.subscribe

        async def failing(*names):
            if any(name.endswith("__group__b") for name in names):
                raise redis.exceptions.ConnectionError("this write fails")
            return await real(*names)

        shard._pubsub.subscribe = failing
        outcomes = await asyncio.gather(
            layer.group_add("b", b), layer.group_discard("c", a), return_exceptions=True
        )
        shard._pubsub.subscribe = real
        await _wait_for(lambda: f"{prefix}__group__c" not in _subscribed(redis_url, prefix))
        await layer.flush()
        return outcomes

    joined, left = _run(body)
    assert isinstance(joined, redis.exceptions.ConnectionError)
    assert left is None  # its UNSUBSCRIBE was written, and it was told so


def test_a_subscription_pending_at_flush_is_told_so(redis_url):
    from openline.core.channel_layer import LayerFlushed

    prefix = f"test-layer-{uuid.uuid4().hex[:8]}."

    async def body():
        layer = _layer(redis_url, prefix)
        channel = await layer.new_channel()
        joining = asyncio.ensure_future(layer.group_add("g", channel))
        await asyncio.sleep(0)  # queued, not yet written
        await layer.flush()
        try:
            await asyncio.wait_for(joining, 5)
        except LayerFlushed:
            return "told"
        return "returned"

    assert _run(body) in ("told", "returned")  # never left waiting


def test_publishes_to_one_group_arrive_in_the_order_they_were_asked_for(redis_url):
    prefix = f"test-layer-{uuid.uuid4().hex[:8]}."

    async def body():
        receiving = _layer(redis_url, prefix)
        channel = await receiving.new_channel()
        await receiving.group_add("g", channel)
        await _wait_for(lambda: f"{prefix}__group__g" in _subscribed(redis_url, prefix))
        sending = _layer(redis_url, prefix)
        await asyncio.gather(*(sending.group_send("g", {"type": "x", "n": n}) for n in range(40)))
        got = [(await asyncio.wait_for(receiving.receive(channel), 5))["n"] for _ in range(40)]
        await sending.flush()
        await receiving.flush()
        return got

    assert _run(body) == list(range(40))


def test_several_groups_messages_leave_in_one_round_trip_and_in_order(redis_url, monkeypatch):
    """``group_send_many`` (the event publisher's batches): one pipeline per Redis host, the
    messages in the order given, after what was published before and before what follows."""
    from redis.asyncio.client import Pipeline

    prefix = f"test-layer-{uuid.uuid4().hex[:8]}."
    monitor = redis.Redis.from_url(redis_url)
    pipelines: list[int] = []
    execute = Pipeline.execute

    async def counted(self, *args, **kwargs):
        pipelines.append(len(self.command_stack))
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)

    async def body():
        receiving = _layer(redis_url, prefix)
        channel = await receiving.new_channel()
        for group in ("a", "b", "c"):
            await receiving.group_add(group, channel)
        await _wait_for(lambda: len(_subscribed(redis_url, prefix)) == 4)
        sending = _layer(redis_url, prefix)
        before = _calls(monitor)
        await sending.group_send("a", {"type": "x", "n": 1})
        await sending.group_send_many(
            [
                ("b", {"type": "x", "n": 2}),
                ("a", {"type": "x", "n": 3}),
                ("c", {"type": "x", "n": 4}),
            ]
        )
        await sending.group_send("c", {"type": "x", "n": 5})
        got = [(await asyncio.wait_for(receiving.receive(channel), 5))["n"] for _ in range(5)]
        after = _calls(monitor)
        await sending.flush()
        await receiving.flush()
        return got, after - before

    try:
        got, publishes = _run(body)
    finally:
        monitor.close()
    assert got == [1, 2, 3, 4, 5]
    assert publishes == 5  # every message published once, none lost or repeated
    assert pipelines == [3]  # the three groups' messages in one pipeline


def _calls(client) -> int:
    stats = client.info("commandstats").get("cmdstat_publish", {})
    return int(stats.get("calls", 0))


def test_a_pipeline_to_an_unreachable_redis_fails_its_caller(redis_url):
    port = _free_port()

    async def body():
        layer = ProcessPubSubChannelLayer(hosts=[{"address": f"redis://127.0.0.1:{port}/0"}])
        try:
            await layer.group_send_many([("a", {"type": "x"}), ("b", {"type": "y"})])
        except Exception as exc:  # noqa: BLE001 - the test checks what arrives
            return type(exc).__name__
        return "sent"

    assert _run(body) in ("ConnectionError", "ConnectionRefusedError", "OSError")


def test_a_failed_pipeline_sends_each_message_on_its_own(redis_url, monkeypatch):
    """A pipeline that fails as a whole (a dropped connection) loses nothing that separate
    publishes would have delivered: each message gets its own attempt."""
    from redis.asyncio.client import Pipeline
    from redis.exceptions import ConnectionError as RedisConnectionError

    prefix = f"test-layer-{uuid.uuid4().hex[:8]}."

    async def dropped(self, *args, **kwargs):
        raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr(Pipeline, "execute", dropped)

    async def body():
        receiving = _layer(redis_url, prefix)
        channel = await receiving.new_channel()
        for group in ("a", "b"):
            await receiving.group_add(group, channel)
        await _wait_for(lambda: len(_subscribed(redis_url, prefix)) == 3)
        sending = _layer(redis_url, prefix)
        await sending.group_send_many([("a", {"type": "x", "n": 1}), ("b", {"type": "x", "n": 2})])
        got = [(await asyncio.wait_for(receiving.receive(channel), 5))["n"] for _ in range(2)]
        await sending.flush()
        await receiving.flush()
        return got

    assert _run(body) == [1, 2]
