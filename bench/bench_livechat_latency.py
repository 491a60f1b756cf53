"""Visitor→operator delivery latency at 200 messages/s across two processes over Redis.

Openline path: visitors' websockets spread over servers A and B, an operator connected to
each; every message is timed at the operator on the other process, so it crosses Redis. Each
message is stored in the database (PostgreSQL when reachable, else SQLite) before its event leaves
through the Redis channel layer. Two ceilings are measured in the same run, at the same
rate: a bare ``websockets`` echo server (round trip) and a bare Channels consumer relaying
through the same Redis layer (Pub/Sub, as the product uses) between two uvicorn processes,
without a database. The list-based RedisChannelLayer relay is shown for information.
Target: p99 ≤ 10 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime

from bench.bench_livechat_idle import (
    ROOT,
    base_env,
    free_port,
    raise_fd_limit,
    run_setup,
    start_server,
    stop,
)

RATE = int(os.environ.get("BENCH_LIVECHAT_RATE", "200"))
# The product's channel layer (settings: OPENLINE_CHANNEL_LAYER); the relay ceiling uses the same.
LAYER = os.environ.get("OPENLINE_CHANNEL_LAYER", "pubsub")
LAYER_NAMES = {"pubsub": "Redis Pub/Sub", "core": "the list layer (RedisChannelLayer)"}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def paced(count: int, rate: float, send) -> None:
    """Call ``send(i)`` ``count`` times at a steady ``rate`` per second."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)


# ----- the Openline path --------------------------------------------------------------------


async def openline_latency(
    url_a: str, url_b: str, setup: dict, count: int, warmup: int
) -> tuple[list[float], int]:
    """Visitors are spread over both processes; each message is timed at the operator
    connected to the *other* process, so every measured delivery crosses Redis."""
    import websockets

    code = setup["code"]
    urls = [url_a, url_b]
    operators = []
    for url in urls:
        ws = await websockets.connect(
            f"{url}/ws/console/",
            origin="http://127.0.0.1",
            compression=None,
            ping_interval=None,
            additional_headers={"Cookie": f"sessionid={setup['session']}"},
        )
        assert json.loads(await ws.recv())["type"] == "ready"
        operators.append(ws)
    visitors = []
    for n, token in enumerate(setup["tokens"]):
        ws = await websockets.connect(
            f"{urls[n % 2]}/ws/widget/{code}/",
            origin="http://127.0.0.1",
            compression=None,
            ping_interval=None,
        )
        await ws.send(json.dumps({"type": "auth", "token": token, "last_id": 10**9}))
        assert json.loads(await ws.recv())["type"] == "ready"
        visitors.append(ws)

    echoes: list[float] = []

    async def drain(ws) -> None:
        # The sender's own copy comes back through its visitor group (same process).
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "message":
                key = frame["message"]["client_id"]
                if key in sent and int(key[1:]) >= warmup:
                    echoes.append((time.perf_counter() - sent[key][0]) * 1000)

    drains = [asyncio.create_task(drain(ws)) for ws in visitors]
    sent: dict[str, tuple[float, int]] = {}
    wall: dict[str, float] = {}
    stored: list[float] = []
    latencies: list[float] = []
    errors = 0
    total = warmup + count
    done = asyncio.Event()
    seen = 0

    async def receive(side: int, operator) -> None:
        nonlocal errors, seen
        async for raw in operator:
            now = time.perf_counter()
            frame = json.loads(raw)
            if frame.get("type") == "message" and frame["message"]["sender"] == "visitor":
                key = frame["message"]["client_id"]
                if key in sent and sent[key][1] != side:
                    if int(key[1:]) >= warmup:
                        latencies.append((now - sent[key][0]) * 1000)
                        created = datetime.fromisoformat(frame["message"]["created_at"]).timestamp()
                        stored.append((created - wall[key]) * 1000)
                    seen += 1
                    if seen >= total:
                        done.set()
            elif frame.get("type") == "error":
                errors += 1

    receivers = [asyncio.create_task(receive(side, ws)) for side, ws in enumerate(operators)]
    conversations = setup["conversations"]

    async def send(i: int) -> None:
        n = i % len(visitors)
        key = f"b{i}"
        sent[key] = (time.perf_counter(), n % 2)
        wall[key] = time.time()
        await visitors[n].send(
            json.dumps(
                {
                    "type": "message",
                    "text": f"bench message {i}",
                    "client_id": key,
                    "conversation": conversations[n],
                }
            )
        )

    await paced(total, RATE, send)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 30)
    for task in receivers + drains:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in operators + visitors), return_exceptions=True)
    openline_latency.stored = stored  # type: ignore[attr-defined]
    openline_latency.echoes = echoes  # type: ignore[attr-defined]
    return latencies, errors + (count - len(latencies))


# ----- ceiling 1: bare websockets echo --------------------------------------------------------

ECHO_SERVER = """
import asyncio, sys, websockets
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None, ping_interval=None):
        await asyncio.Future()
asyncio.run(main())
"""


async def echo_latency(port: int, count: int, warmup: int) -> list[float]:
    import websockets

    ws = await websockets.connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None)
    sent: dict[int, float] = {}
    latencies: list[float] = []
    total = warmup + count

    async def receive() -> None:
        for _ in range(total):
            raw = await ws.recv()
            i = int(raw)
            if i >= warmup:
                latencies.append((time.perf_counter() - sent[i]) * 1000)

    receiver = asyncio.create_task(receive())

    async def send(i: int) -> None:
        sent[i] = time.perf_counter()
        await ws.send(str(i))

    await paced(total, RATE, send)
    await asyncio.wait_for(receiver, 30)
    await ws.close()
    return latencies


# ----- ceiling 2: bare Channels consumer relaying through Redis -------------------------------


def relay_app():
    """Build a bare Channels app: /relay/send/ publishes to a group that /relay/recv/ listens to."""
    import django

    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    class Sender(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            await self.channel_layer.group_send(
                "bench-relay", {"type": "relay.message", "text": text_data}
            )

    class Receiver(AsyncWebsocketConsumer):
        async def connect(self):
            await self.channel_layer.group_add("bench-relay", self.channel_name)
            await self.accept()

        async def relay_message(self, event):
            await self.send(text_data=event["text"])

    return ProtocolTypeRouter(
        {
            "websocket": URLRouter(
                [path("relay/send/", Sender.as_asgi()), path("relay/recv/", Receiver.as_asgi())]
            )
        }
    )


async def relay_latency(url_a: str, url_b: str, count: int, warmup: int) -> list[float]:
    import websockets

    receiver_ws = await websockets.connect(
        f"{url_b}/relay/recv/", compression=None, ping_interval=None
    )
    sender_ws = await websockets.connect(
        f"{url_a}/relay/send/", compression=None, ping_interval=None
    )
    await asyncio.sleep(0.3)
    sent: dict[int, float] = {}
    latencies: list[float] = []
    total = warmup + count

    async def receive() -> None:
        for _ in range(total):
            raw = await receiver_ws.recv()
            i = int(raw)
            if i >= warmup:
                latencies.append((time.perf_counter() - sent[i]) * 1000)

    receiver = asyncio.create_task(receive())

    async def send(i: int) -> None:
        sent[i] = time.perf_counter()
        await sender_ws.send(str(i))

    await paced(total, RATE, send)
    await asyncio.wait_for(receiver, 30)
    await sender_ws.close()
    await receiver_ws.close()
    return latencies


# ----- the run --------------------------------------------------------------------------------


def _relay(relay_env: dict, label: str, count: int, warmup: int) -> list[dict]:
    relay_ports = [free_port(), free_port()]
    relays = [
        start_server(relay_env, p, app="bench.bench_livechat_latency:relay_app", factory=True)
        for p in relay_ports
    ]
    try:
        url_a, url_b = (f"ws://127.0.0.1:{p}" for p in relay_ports)
        return _summary(label, asyncio.run(relay_latency(url_a, url_b, count, warmup)))
    finally:
        for relay in relays:
            stop(relay)


def _postgres_database() -> tuple[str | None, callable]:
    """Create a scratch PostgreSQL database if a server answers; return its URL and a dropper."""
    base = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    try:
        import psycopg

        name = f"openline_bench_{os.getpid()}"
        with psycopg.connect(base, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:  # noqa: BLE001 - fall back to SQLite
        return None, lambda: None

    def drop() -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return base.rsplit("/", 1)[0] + "/" + name, drop


def _summary(label: str, values: list[float], target_p99: float | None = None) -> list[dict]:
    p50, p99 = percentile(values, 50), percentile(values, 99)
    rows = [
        {"name": f"{label} p50", "value": round(p50, 2), "unit": "ms"},
        {"name": f"{label} p99", "value": round(p99, 2), "unit": "ms"},
        {
            "name": f"{label} max / mean",
            "value": f"{max(values):.2f} / {statistics.fmean(values):.2f}" if values else "n/a",
            "unit": "ms",
        },
    ]
    if target_p99 is not None:
        rows[1]["target"] = f"<= {target_p99} ms"
        rows[1]["ok"] = p99 <= target_p99
    return rows


def run(args) -> list[dict]:
    """Measure the Openline path and both ceilings at the same rate in one run."""
    raise_fd_limit()
    seconds = 3 if args.quick else 15
    count = RATE * seconds
    warmup = RATE
    visitors = 20 if args.quick else 50
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    results: list[dict] = []
    database_url, drop_database = _postgres_database()
    with tempfile.TemporaryDirectory(prefix="openline-bench-") as var_dir:
        extra = {
            "REDIS_URL": redis_url,
            "OPENLINE_CHANNEL_PREFIX": prefix,
            "OPENLINE_CHANNEL_LAYER": LAYER,
            # The bench's visitors share one IP and write faster than people do.
            "OPENLINE_LIVECHAT_RATE_VISITOR": "100/50",
            "OPENLINE_LIVECHAT_RATE_IP": "100000/100000",
            "OPENLINE_LIVECHAT_RATE_FRAMES": "1000/500",
        }
        if database_url:
            extra["DATABASE_URL"] = database_url
        env = base_env(var_dir, **extra)
        try:
            setup = run_setup(env, visitors, conversations=visitors)
            ports = [free_port(), free_port()]
            servers = [start_server(env, port) for port in ports]
            try:
                url_a, url_b = (f"ws://127.0.0.1:{p}" for p in ports)
                latencies, lost = asyncio.run(openline_latency(url_a, url_b, setup, count, warmup))
            finally:
                for server in servers:
                    stop(server)
            results += _summary(
                f"Openline visitor→operator (stored, 2 processes via {LAYER_NAMES[LAYER]})",
                latencies,
                10,
            )
            results += _summary(
                "  of which: frame sent → row stored (server clock)", openline_latency.stored
            )
            results += _summary(
                "  the sender's own copy back (same process, via Redis)", openline_latency.echoes
            )
            results.append(
                {
                    "name": "Openline messages lost or refused",
                    "value": lost,
                    "unit": "messages",
                    "target": "0",
                    "ok": lost == 0,
                }
            )
            results.append(
                {
                    "name": "database",
                    "value": "PostgreSQL" if database_url else "SQLite",
                    "unit": "",
                }
            )

            echo_port = free_port()
            echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(echo_port)], cwd=ROOT)
            try:
                time.sleep(0.8)
                results += _summary(
                    "ceiling: bare websockets echo (round trip)",
                    asyncio.run(echo_latency(echo_port, count, warmup)),
                )
            finally:
                echo.terminate()
                echo.wait()

            # The product's layer gives the ceiling; the other Redis layer is shown for
            # information (the list layer pulls each message with a BZPOPMIN round trip).
            other = "core" if LAYER == "pubsub" else "pubsub"
            for layer, label in (
                (
                    LAYER,
                    f"ceiling: bare Channels relay over {LAYER_NAMES[LAYER]} (2 processes, no DB)",
                ),
                (other, f"  information: the same relay over {LAYER_NAMES[other]}"),
            ):
                relay_env = dict(
                    env,
                    OPENLINE_CHANNEL_PREFIX=f"{prefix}-relay-{layer}",
                    OPENLINE_CHANNEL_LAYER=layer,
                )
                results += _relay(relay_env, label, count, warmup)
        finally:
            drop_database()
    results.append(
        {"name": "rate / measured messages per path", "value": f"{RATE}/s / {count}", "unit": ""}
    )
    return results
