"""The reconnection storm's parts: seeding returning visitors, servers, client processes.

Used by ``bench_livechat_idle``; kept apart so each file stays readable.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_livechat_idle import ROOT, free_port, raise_fd_limit, rss_kb
from bench.common import uvicorn_command

# ----- the reconnection storm ---------------------------------------------------------------

CHANNEL_NAME = "Bench reconnect"
MISSED_EVERY = 10  # one visitor in ten has an operator reply it has not seen yet


def bench_database_url(quick: bool) -> str:
    """Return this benchmark's own PostgreSQL database (BENCH_DATABASE_URL overrides it)."""
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return explicit
    name = "bench_reconnect_quick" if quick else "bench_reconnect"
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def ensure_postgres(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _seed_main(count: int, out: str) -> None:
    """Seed ``count`` returning visitors, each with a consent, a conversation and a message.

    The first one goes through the real start flow; the others are copies of its rows made in
    bulk (the bench needs many returning clients, not a benchmark of the start flow), so a
    reconnecting visitor reads exactly what a real one would. Seeded rows are kept between
    runs; only the tokens are signed anew.
    """
    import uuid

    from django.db import transaction
    from django.utils import timezone

    from openline.accounts.models import Role, User
    from openline.accounts.services import create_staff_user
    from openline.consent.models import ConsentRecord
    from openline.consent.services import create_agreement
    from openline.conversations.models import Conversation, Message, SenderKind, Visitor
    from openline.livechat import flows, tokens
    from openline.openchannels.models import OpenChannel
    from openline.openchannels.policy import consent_offer
    from openline.openchannels.services import create_open_channel

    channel = OpenChannel.objects.filter(name=CHANNEL_NAME).first()
    if channel is None:
        admin = User.objects.filter(username="bench-reconnect-admin").first() or (
            create_staff_user(
                username="bench-reconnect-admin",
                password="bench-password-123",
                role=Role.ADMINISTRATOR,
                display_name="Bench Admin",
            )
        )
        agreement = create_agreement(
            actor=admin,
            name="Bench reconnect consent",
            text="We process your messages.",
            allow_html=False,
        )
        channel = create_open_channel(
            actor=admin,
            name=CHANNEL_NAME,
            operators=[admin],
            connectors=["livechat"],
            consent_enabled=True,
            agreement=agreement,
        )
        shown = consent_offer(channel, "en")
        flows.livechat_start(
            channel=channel,
            visitor=None,
            accepted=flows.AcceptedConsent(
                version_id=shown.version.id, language=shown.language, sha256=shown.sha256
            ),
            page_url="https://bench.example/",
            ip="127.0.0.1",
            user_agent="bench",
            language="en",
            text="hello",
            client_id="seed-0",
        )
    have = Visitor.objects.filter(channel=channel).count()
    if have < count:
        template = Visitor.objects.filter(channel=channel).order_by("id").first()
        conversation = Conversation.objects.get(visitor=template)
        message = Message.objects.filter(conversation=conversation).order_by("id").first()
        record = ConsentRecord.objects.filter(visitor=template).first()
        operator = User.objects.filter(username="bench-reconnect-admin").first()
        now = timezone.now()
        for start in range(have, count, 2000):
            with transaction.atomic():
                batch = range(start, min(count, start + 2000))
                visitors = []
                for _ in batch:
                    template.pk, template.public_id = None, uuid.uuid4()
                    visitors.append(Visitor(**_fields(template)))
                Visitor.objects.bulk_create(visitors)
                conversations = []
                for visitor in visitors:
                    conversation.pk, conversation.visitor = None, visitor
                    conversations.append(Conversation(**_fields(conversation)))
                Conversation.objects.bulk_create(conversations)
                records, messages = [], []
                for i, (visitor, conv) in zip(batch, zip(visitors, conversations)):
                    record.pk, record.uuid, record.visitor = None, uuid.uuid4(), visitor
                    record.conversation = conv
                    records.append(ConsentRecord(**_fields(record)))
                    message.pk, message.conversation = None, conv
                    message.client_id = f"seed-{i}"
                    messages.append(Message(**_fields(message)))
                    if i % MISSED_EVERY == 0:
                        messages.append(
                            Message(
                                conversation=conv,
                                sender=SenderKind.OPERATOR,
                                author=operator,
                                text="Thanks, we are on it.",
                                created_at=now,
                            )
                        )
                ConsentRecord.objects.bulk_create(records)
                Message.objects.bulk_create(messages)
    # Bulk-loaded tables have no planner statistics until ANALYZE runs (autovacuum may be off
    # or not have come round yet); a live database has them. A few hundred ms at 20,000 rows.
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    clients = []
    visitors = Visitor.objects.filter(channel=channel).order_by("id")[:count]
    for visitor in visitors.iterator():
        clients.append([tokens.make_token(visitor=visitor, channel=channel), visitor.pk])
    # Each client last saw its own first message; the operator replies after it are missed.
    firsts = dict(
        Message.objects.filter(conversation__channel=channel, sender="visitor").values_list(
            "conversation__visitor_id", "id"
        )
    )
    replies: dict[int, int] = {}
    for pk in Message.objects.filter(
        conversation__channel=channel, sender=SenderKind.OPERATOR
    ).values_list("conversation__visitor_id", flat=True):
        replies[pk] = replies.get(pk, 0) + 1
    result = {
        "code": channel.code,
        "clients": [[token, firsts.get(pk, 0), replies.get(pk, 0)] for token, pk in clients],
    }
    Path(out).write_text(json.dumps(result))


def _fields(instance) -> dict:
    return {
        f.attname: getattr(instance, f.attname)
        for f in instance._meta.concrete_fields
        if not f.primary_key
    }


def seed(env: dict, count: int) -> dict:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0", "--no-input"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    out = Path(env["OPENLINE_VAR_DIR"]) / "bench-seed.json"
    code = (
        "import django; django.setup();"
        "from bench.storm import _seed_main;"
        f"_seed_main({count}, {str(out)!r})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    return json.loads(out.read_text())


def ceiling_app():
    """A bare Channels consumer: accept, answer the first frame; same layer, no database.

    The layer is the one settings give Openline (OPENLINE_CHANNEL_LAYER). Like Openline's
    widget consumer it skips Channels' per-message ``close_old_connections`` thread hop (it has
    no database), and like ``openline.asgi`` it freezes what was loaded at start-up out of the
    garbage collector's sight: the ceiling does no work Openline is spared.
    """
    import gc

    import django

    django.setup()
    from channels.consumer import get_handler_name
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    class Bare(AsyncWebsocketConsumer):
        async def dispatch(self, message):
            await getattr(self, get_handler_name(message))(message)

        async def receive(self, text_data=None, bytes_data=None):
            await self.send(text_data='{"type":"ready","messages":[]}')

    app = ProtocolTypeRouter({"websocket": URLRouter([path("ws/bare/", Bare.as_asgi())])})
    gc.freeze()
    return app


def start_workers(env: dict, port: int, workers: int, app: str, factory: bool = False):
    """Start uvicorn with ``workers`` processes (as ``manage.py serve --workers N``).

    Through ``openline.core.uvicorn_run``, as ``serve`` starts it: its workers get the server's
    garbage collector thresholds (the ceiling's too).
    """
    command = uvicorn_command(app, port=port, workers=workers, factory=factory)
    assert command[1:3] == ["-m", "uvicorn"]
    command[2] = "openline.core.uvicorn_run"
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server process exited")
        pids = worker_pids(process.pid)
        if len(pids) >= workers:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    time.sleep(1.0)  # let every worker finish importing
                    return process
            except OSError:
                pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def worker_pids(pid: int) -> list[int]:
    """Return the worker processes of a uvicorn supervisor (or the process itself)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    pids = [int(c) for c in children]
    # uvicorn's multiprocess mode may keep a resource tracker child: keep the Pythons serving.
    serving = [p for p in pids if "uvicorn" in _cmdline(p) or "multiprocessing" in _cmdline(p)]
    return serving or [pid]  # one worker: uvicorn serves in the process itself


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _storm_client(port, path, firsts, concurrency, go, results, release, alive_q) -> None:
    raise_fd_limit()
    asyncio.run(_storm_async(port, path, firsts, concurrency, go, results, release, alive_q))


async def _storm_async(port, path, firsts, concurrency, go, results, release, alive_q) -> None:
    from bench import wsclient

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, go.wait)
    cpu = time.process_time()
    result, held = await wsclient.storm(
        host="127.0.0.1", port=port, path=path, firsts=firsts, concurrency=concurrency
    )
    cpu = time.process_time() - cpu
    results.put(
        {
            "opened": result.opened,
            "failed": result.failed,
            "retried": result.retried,
            "started": result.started,
            "finished": result.finished,
            "missed": result.missed,
            "latencies": result.latencies,
            "errors": result.errors,
            "cpu": cpu,
        }
    )
    await loop.run_in_executor(None, release.wait)
    still_open = sum(1 for conn in held if not conn.lost)
    alive_q.put((await wsclient.pings(held, sample=100), still_open))
    wsclient.close_all(held)
    await asyncio.sleep(0.5)


def storm(
    port: int, path: str, firsts: list[bytes], *, processes: int, concurrency: int, rss_of=None
) -> dict:
    """Open every socket from ``processes`` client processes at once; hold them, then close."""
    ctx = multiprocessing.get_context("fork")
    go, release = ctx.Event(), ctx.Event()
    results, alive_q = ctx.Queue(), ctx.Queue()
    clients = [
        ctx.Process(
            target=_storm_client,
            args=(port, path, firsts[i::processes], concurrency, go, results, release, alive_q),
        )
        for i in range(processes)
    ]
    for client in clients:
        client.start()
    time.sleep(1.0)
    go.set()
    parts = [results.get(timeout=900) for _ in clients]
    time.sleep(2.0)
    held_rss = rss_of() if rss_of else 0
    release.set()
    answers = [alive_q.get(timeout=120) for _ in clients]
    alive, still_open = sum(a for a, _ in answers), sum(o for _, o in answers)
    for client in clients:
        client.join(timeout=60)
    latencies = sorted(x for part in parts for x in part["latencies"])
    errors: dict[str, int] = {}
    for part in parts:
        for name, n in part["errors"].items():
            errors[name] = errors.get(name, 0) + n
    return {
        "opened": sum(p["opened"] for p in parts),
        "failed": sum(p["failed"] for p in parts),
        "retried": sum(p["retried"] for p in parts),
        "missed": sum(p["missed"] for p in parts),
        "seconds": max(p["finished"] for p in parts) - min(p["started"] for p in parts),
        "p50": latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "client_cpu": sum(p["cpu"] for p in parts),
        "errors": errors,
        "alive": alive,
        "still_open": still_open,
        "rss_kb": held_rss,
    }


def bench_port() -> int:
    """Return a free port in this benchmark's range (18300–18399), else any free port."""
    import socket

    for port in range(18300, 18400):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def _rss_sum(pid: int) -> int:
    return sum(rss_kb(p) for p in worker_pids(pid))
