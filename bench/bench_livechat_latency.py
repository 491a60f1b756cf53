"""Visitor→operator delivery latency at 200 messages/s across two processes over Redis.

Openline path: visitors' websockets spread over servers A and B (uvicorn, DEBUG off, the product's
Redis Pub/Sub channel layer), an operator connected to each; every message is timed at the
operator on the *other* process, so each measured delivery crosses Redis. Each message is stored
in PostgreSQL (SQLite when no server answers) and committed before its event leaves. On
PostgreSQL a client's message costs one Redis round trip (its visitor's and its IP's rate limits
in one script call) and one autocommit statement sent from the server's event loop
(``openline.livechat.message_pg``: the message stored, the conversation noted, the webhook
outbox rows queued and the client's CRM name read, no thread hop, no BEGIN/COMMIT); its events
are serialised once, the sender is answered directly and the operators' copy goes out through
Redis Pub/Sub.

Ceilings, measured in the same run at the same rate and with the same socket layout (senders
spread over two uvicorn processes, one receiver on each, timed on the other process):

* the fair ceiling: a bare Channels consumer that does one durable single-row INSERT (psycopg,
  autocommit, so each row is committed with ``synchronous_commit`` as configured) per message and
  then relays it through the same Redis Pub/Sub layer — what storing first and relaying costs
  without any application code. Target: Openline p99 ≤ 2× this ceiling's p99, 0 lost;
* the same relay without a database;
* a bare ``websockets`` echo server (round trip), and the list-based RedisChannelLayer relay for
  information.

Cores: the machine has two, shared by everything: both server processes, PostgreSQL, Redis and
this load generator (one asyncio process sending 200 small frames a second, a few % of one core).
Nothing is pinned with ``taskset``: the servers under test and their ceilings get the same share.

Database: ``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/bench_latency``),
dropped and created afresh at the start of each run (the fixtures need an empty database).
Redis: ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), keys under ``bench_latency-…``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
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
# The product's channel layer (settings: OPENLINE_CHANNEL_LAYER); the relay ceilings use the same.
LAYER = os.environ.get("OPENLINE_CHANNEL_LAYER", "pubsub")
LAYER_NAMES = {"pubsub": "Redis Pub/Sub", "core": "the list layer (RedisChannelLayer)"}
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/bench_latency"
REDIS_PREFIX = "bench_latency"
# The fair ceiling's table: a message-shaped row, one per relayed message.
RELAY_TABLE = """
CREATE TABLE IF NOT EXISTS bench_relay_message (
    id bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL,
    client_id varchar(64) NOT NULL,
    text text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
RELAY_INSERT = (
    "INSERT INTO bench_relay_message (conversation_id, client_id, text) VALUES (%s, %s, %s)"
)
TARGET_RATIO = 2.0


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


async def _connect(url: str, **kwargs):
    import websockets

    return await websockets.connect(url, compression=None, ping_interval=None, **kwargs)


# ----- the Openline path --------------------------------------------------------------------


async def openline_latency(
    url_a: str, url_b: str, setup: dict, count: int, warmup: int
) -> tuple[list[float], int]:
    """Visitors are spread over both processes; each message is timed at the operator
    connected to the *other* process, so every measured delivery crosses Redis."""
    code = setup["code"]
    urls = [url_a, url_b]
    operators = []
    for url in urls:
        ws = await _connect(
            f"{url}/ws/console/",
            origin="http://127.0.0.1",
            additional_headers={"Cookie": f"sessionid={setup['session']}"},
        )
        assert json.loads(await ws.recv())["type"] == "ready"
        operators.append(ws)
    visitors = []
    for n, token in enumerate(setup["tokens"]):
        ws = await _connect(f"{urls[n % 2]}/ws/widget/{code}/", origin="http://127.0.0.1")
        await ws.send(json.dumps({"type": "auth", "token": token, "last_id": 10**9}))
        assert json.loads(await ws.recv())["type"] == "ready"
        visitors.append(ws)

    acks: list[float] = []

    async def drain(ws) -> None:
        # The sender's confirmation that its message is stored (same connection).
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") in ("message", "ack"):
                key = frame["message"]["client_id"]
                if key in sent and int(key[1:]) >= warmup:
                    acks.append((time.perf_counter() - sent[key][0]) * 1000)

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
    openline_latency.acks = acks  # type: ignore[attr-defined]
    return latencies, errors + (count - len(latencies))


# ----- ceiling: bare websockets echo ----------------------------------------------------------

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
    ws = await _connect(f"ws://127.0.0.1:{port}")
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


# ----- ceilings: bare Channels consumers relaying through Redis -------------------------------


def relay_app():
    """Build a bare Channels app over the product's channel layer.

    ``/relay/send/`` publishes each frame to a group that every ``/relay/recv/`` socket joins;
    ``/relay/store/`` first INSERTs one row per frame into PostgreSQL (its own connection,
    autocommit: each row is committed, durably, before the frame is relayed).
    """
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

    class StoringSender(Sender):
        async def connect(self):
            import psycopg

            self.db = await psycopg.AsyncConnection.connect(
                os.environ["BENCH_RELAY_DATABASE_URL"], autocommit=True
            )
            await self.accept()

        async def disconnect(self, code):
            await self.db.close()

        async def receive(self, text_data=None, bytes_data=None):
            await self.db.execute(RELAY_INSERT, (int(text_data), f"b{text_data}", text_data))
            await super().receive(text_data=text_data)

    class Receiver(AsyncWebsocketConsumer):
        async def connect(self):
            await self.channel_layer.group_add("bench-relay", self.channel_name)
            await self.accept()

        async def relay_message(self, event):
            await self.send(text_data=event["text"])

    return ProtocolTypeRouter(
        {
            "websocket": URLRouter(
                [
                    path("relay/send/", Sender.as_asgi()),
                    path("relay/store/", StoringSender.as_asgi()),
                    path("relay/recv/", Receiver.as_asgi()),
                ]
            )
        }
    )


async def relay_latency(
    urls: list[str], route: str, senders: int, count: int, warmup: int
) -> tuple[list[float], int]:
    """Senders spread over both processes; each frame is timed at the receiver on the other one."""
    receivers = [await _connect(f"{url}/relay/recv/") for url in urls]
    sockets = [await _connect(f"{urls[n % 2]}/relay/{route}/") for n in range(senders)]
    await asyncio.sleep(0.3)  # the receivers' subscriptions settle
    sent: dict[int, tuple[float, int]] = {}
    latencies: list[float] = []
    total = warmup + count
    done = asyncio.Event()
    seen = 0

    async def receive(side: int, ws) -> None:
        nonlocal seen
        async for raw in ws:
            now = time.perf_counter()
            i = int(raw)
            if sent[i][1] != side:
                if i >= warmup:
                    latencies.append((now - sent[i][0]) * 1000)
                seen += 1
                if seen >= total:
                    done.set()

    tasks = [asyncio.create_task(receive(side, ws)) for side, ws in enumerate(receivers)]

    async def send(i: int) -> None:
        n = i % senders
        sent[i] = (time.perf_counter(), n % 2)
        await sockets[n].send(str(i))

    await paced(total, RATE, send)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 30)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in receivers + sockets), return_exceptions=True)
    return latencies, count - len(latencies)


# ----- the run --------------------------------------------------------------------------------


def _relay(relay_env: dict, route: str, senders: int, count: int, warmup: int):
    ports = [free_port(), free_port()]
    relays = [
        start_server(relay_env, p, app="bench.bench_livechat_latency:relay_app", factory=True)
        for p in ports
    ]
    try:
        urls = [f"ws://127.0.0.1:{p}" for p in ports]
        return asyncio.run(relay_latency(urls, route, senders, count, warmup))
    finally:
        for relay in relays:
            stop(relay)


def _fresh_database() -> str | None:
    """Drop and create the bench's PostgreSQL database; None if no server answers (SQLite then)."""
    url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE
    base, name = url.rsplit("/", 1)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"BENCH_DATABASE_URL names an unusual database: {name!r}")
    try:
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=2) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(RELAY_TABLE)
    except psycopg.OperationalError:
        return None
    return url


STATS = (("p50", 50.0), ("p99", 99.0), ("max", 100.0))


def _rows(
    label: str,
    values: list[float],
    *,
    ceiling: tuple[str, list[float]] | None = None,
    target_ratio: float | None = None,
) -> list[dict]:
    """One row per statistic (p50, p99, max), each beside the ceiling's same statistic."""
    rows = []
    for stat, p in STATS:
        value = percentile(values, p)
        row: dict = {"name": f"{label} {stat}", "value": round(value, 2), "unit": "ms"}
        if ceiling is not None:
            ceiling_value = percentile(ceiling[1], p)
            row["ceiling"] = {
                "name": f"{ceiling[0]} {stat}",
                "value": round(ceiling_value, 2),
                "unit": "ms",
            }
            row["ratio"] = round(value / ceiling_value, 2) if ceiling_value else None
            if stat == "p99" and target_ratio is not None:
                row["target"] = f"<= {target_ratio:g}x the ceiling's p99"
                row["ok"] = row["ratio"] is not None and row["ratio"] <= target_ratio
        rows.append(row)
    return rows


def _lost(label: str, lost: int) -> dict:
    return {"name": label, "value": lost, "unit": "messages", "target": "0", "ok": lost == 0}


def run(args) -> list[dict]:
    """Measure the Openline path and its ceilings at the same rate in one run."""
    raise_fd_limit()
    seconds = 3 if args.quick else 15
    count = RATE * seconds
    warmup = RATE
    visitors = 20 if args.quick else 50
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    prefix = f"{REDIS_PREFIX}-{uuid.uuid4().hex[:8]}"
    results: list[dict] = []
    database_url = _fresh_database()
    layer_name = LAYER_NAMES[LAYER]
    with tempfile.TemporaryDirectory(prefix="openline-bench-") as var_dir:
        extra = {
            "REDIS_URL": redis_url,
            "OPENLINE_CHANNEL_PREFIX": prefix,
            "OPENLINE_CHANNEL_LAYER": LAYER,
            "OPENLINE_DEBUG": "false",
            # The bench's visitors share one IP and write faster than people do.
            "OPENLINE_LIVECHAT_RATE_VISITOR": "100/50",
            "OPENLINE_LIVECHAT_RATE_IP": "100000/100000",
            "OPENLINE_LIVECHAT_RATE_FRAMES": "1000/500",
        }
        if database_url:
            extra["DATABASE_URL"] = database_url
        env = base_env(var_dir, **extra)
        setup = run_setup(env, visitors, conversations=visitors)

        def relay_env(layer: str) -> dict:
            return dict(
                env,
                OPENLINE_CHANNEL_PREFIX=f"{prefix}-relay-{layer}",
                OPENLINE_CHANNEL_LAYER=layer,
                BENCH_RELAY_DATABASE_URL=database_url or "",
            )

        # The fair ceiling first, then Openline, so neither always runs on a warmer machine.
        fair = None
        fair_label = f"ceiling: bare Channels relay storing each message (1 INSERT, {layer_name})"
        if database_url:
            fair_values, fair_lost = _relay(relay_env(LAYER), "store", visitors, count, warmup)
            fair = (fair_label, fair_values)

        ports = [free_port(), free_port()]
        servers = [start_server(env, port) for port in ports]
        try:
            url_a, url_b = (f"ws://127.0.0.1:{p}" for p in ports)
            latencies, lost = asyncio.run(openline_latency(url_a, url_b, setup, count, warmup))
        finally:
            for server in servers:
                stop(server)
        results += _rows(
            f"Openline visitor→operator (stored, 2 processes via {layer_name})",
            latencies,
            ceiling=fair,
            target_ratio=TARGET_RATIO,
        )
        results.append(_lost("Openline messages lost or refused", lost))
        results += _rows(
            "  of which: frame sent → row stored (server clock)", openline_latency.stored
        )
        results += _rows("  the sender's acknowledgement (same connection)", openline_latency.acks)
        results.append(
            {"name": "database", "value": "PostgreSQL" if database_url else "SQLite", "unit": ""}
        )
        if fair is not None:
            results += _rows(fair_label, fair[1])
            results.append(_lost("  ceiling messages lost", fair_lost))
        else:
            results.append(
                {"name": fair_label, "value": "n/a (no PostgreSQL)", "unit": "", "ok": False}
            )

        bare, _ = _relay(relay_env(LAYER), "send", visitors, count, warmup)
        results += _rows(f"ceiling: bare Channels relay over {layer_name} (no DB)", bare)

        echo_port = free_port()
        echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(echo_port)], cwd=ROOT)
        try:
            time.sleep(0.8)
            results += _rows(
                "ceiling: bare websockets echo (round trip)",
                asyncio.run(echo_latency(echo_port, count, warmup)),
            )
        finally:
            echo.terminate()
            echo.wait()

        # The list layer pulls each message with a BZPOPMIN round trip: shown for information.
        other = "core" if LAYER == "pubsub" else "pubsub"
        values, _ = _relay(relay_env(other), "send", visitors, count, warmup)
        results += _rows(f"  information: the bare relay over {LAYER_NAMES[other]}", values)
    results.append(
        {
            "name": "rate / measured messages per path / load average (1 min) at the end",
            "value": f"{RATE}/s / {count} / {os.getloadavg()[0]:.2f}",
            "unit": "",
        }
    )
    return results
