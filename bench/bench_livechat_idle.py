"""Idle visitor websockets held by one ASGI process, and the memory each one costs.

Starts one uvicorn process serving Openline (SQLite in a temporary directory, in-memory
channel layer), creates N visitors, then opens N authenticated widget websockets from
several client processes and reports the server's RSS growth per connection.
Target: 20,000 connections at no more than 50 KB each.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def raise_fd_limit(wanted: int = 200_000) -> int:
    """Raise RLIMIT_NOFILE (children inherit it); return the soft limit reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (wanted, hard):
        try:
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (target, max(target, hard) if os.geteuid() == 0 else hard)
            )
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kb(pid: int) -> int:
    """Return a process's resident set size in KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(var_dir: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "openline.settings",
            "OPENLINE_VAR_DIR": var_dir,
            "OPENLINE_LOG_LEVEL": "WARNING",
            "OPENLINE_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "OPENLINE_SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "OPENLINE_TASKS_BACKEND": "django_tasks.backends.dummy.DummyBackend",
        }
    )
    env.update(extra)
    return env


def run_setup(env: dict, visitors: int, conversations: int = 0) -> dict:
    """Migrate a fresh database and create the bench's channel, operator and visitors."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    out = Path(env["OPENLINE_VAR_DIR"]) / "bench-setup.json"
    code = (
        "import django; django.setup();"
        "from bench.bench_livechat_idle import _setup_main;"
        f"_setup_main({visitors}, {conversations}, {str(out)!r})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    return json.loads(out.read_text())


def _setup_main(visitors: int, conversations: int, out: str) -> None:
    """Create fixtures through the write paths (runs inside a configured Django process)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import transaction

    from openline.accounts.models import Role
    from openline.accounts.services import create_staff_user
    from openline.consent.services import create_agreement
    from openline.livechat import flows, tokens
    from openline.openchannels.policy import consent_offer
    from openline.openchannels.services import create_open_channel

    admin = create_staff_user(
        username="bench-admin",
        password="bench-password-123",
        role=Role.ADMINISTRATOR,
        display_name="Bench Admin",
    )
    operator = create_staff_user(
        username="bench-otto",
        password="bench-password-123",
        role=Role.OPERATOR,
        display_name="Bench Operator",
    )
    agreement = create_agreement(
        actor=admin, name="Bench consent", text="We process your messages.", allow_html=False
    )
    channel = create_open_channel(
        actor=admin,
        name="Bench",
        operators=[operator],
        connectors=["livechat"],
        consent_enabled=True,
        agreement=agreement,
    )
    shown = consent_offer(channel, "en")
    accepted = flows.AcceptedConsent(
        version_id=shown.version.id, language=shown.language, sha256=shown.sha256
    )
    result = {"code": channel.code, "tokens": [], "conversations": []}
    for i in range(conversations):
        started = flows.livechat_start(
            channel=channel,
            visitor=None,
            accepted=accepted,
            page_url="https://bench.example/",
            ip="127.0.0.1",
            user_agent="bench",
            language="en",
            text=f"hello {i}",
            client_id=f"setup-{i}",
        )
        result["tokens"].append(tokens.make_token(visitor=started.visitor, channel=channel))
        result["conversations"].append(started.conversation.id)
    with transaction.atomic():
        for _ in range(visitors - conversations):
            visitor = flows.create_livechat_visitor(
                channel=channel, language="en", user_agent="bench"
            )
            result["tokens"].append(tokens.make_token(visitor=visitor, channel=channel))
    session = SessionStore()
    session[SESSION_KEY] = str(operator.pk)
    session[BACKEND_SESSION_KEY] = (
        settings.AUTHENTICATION_BACKENDS[0]
        if hasattr(settings, "AUTHENTICATION_BACKENDS")
        else "django.contrib.auth.backends.ModelBackend"
    )
    session[HASH_SESSION_KEY] = operator.get_session_auth_hash()
    session.save()
    result["session"] = session.session_key
    Path(out).write_text(json.dumps(result))


def start_server(
    env: dict, port: int, app: str = "openline.asgi:application", factory: bool = False
) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--log-level",
        "warning",
        "--no-access-log",
        "--backlog",
        "4096",
        # Chat frames are tiny; permessage-deflate would cost ~50 KB of zlib state per socket.
        "--ws-per-message-deflate",
        "false",
    ]
    if factory:
        args.append("--factory")
    process = subprocess.Popen(args, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    import socket

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server process exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server process did not start")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


# ----- client processes ---------------------------------------------------------------------


def _client_main(url: str, code: str, tokens: list[str], opened, done, stop_event) -> None:
    raise_fd_limit()
    asyncio.run(_hold(url, code, tokens, opened, done, stop_event))


async def _hold(url, code, tokens, opened, done, stop_event) -> None:
    import websockets

    sockets = []
    failures = 0
    gate = asyncio.Semaphore(64)

    async def one(token: str) -> None:
        nonlocal failures
        async with gate:
            for attempt in range(3):
                try:
                    ws = await websockets.connect(
                        f"{url}/ws/widget/{code}/",
                        origin="http://127.0.0.1",
                        open_timeout=60,
                        ping_interval=None,
                        max_queue=4,
                        compression=None,
                    )
                    await ws.send(json.dumps({"type": "auth", "token": token, "last_id": 0}))
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    if frame.get("type") != "ready":
                        raise RuntimeError(frame)
                    sockets.append(ws)
                    return
                except Exception:  # noqa: BLE001 - counted and retried
                    await asyncio.sleep(0.2 * (attempt + 1))
            failures += 1

    await asyncio.gather(*(one(t) for t in tokens))
    opened.put((len(sockets), failures))
    while not stop_event.is_set():
        await asyncio.sleep(0.2)
    # Check the connections are still alive before letting go.
    alive = 0
    for ws in sockets[:200]:
        try:
            await ws.send(json.dumps({"type": "ping"}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            alive += frame.get("type") == "pong"
        except Exception:  # noqa: BLE001
            pass
    done.put(alive)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def run(args) -> list[dict]:
    """Open idle widget websockets against one server process and measure memory per connection."""
    target = 1_000 if args.quick else 20_000
    client_processes = 2 if args.quick else 4
    fd_limit = raise_fd_limit()
    # One socket is one file descriptor in the server; keep room for the database and Redis.
    attempt = min(target, fd_limit - 200)
    layer = "in-memory"
    extra = {}
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        import redis

        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
        # Channels' in-memory layer scans every channel on each receive (O(n) per connection);
        # the Redis layer is what a deployment that holds many sockets uses anyway.
        extra = {"REDIS_URL": redis_url, "OPENLINE_CHANNEL_PREFIX": f"bench-idle-{os.getpid()}"}
        layer = "Redis"
    except Exception:  # noqa: BLE001 - fall back to the in-memory layer
        pass
    with tempfile.TemporaryDirectory(prefix="openline-bench-") as var_dir:
        env = base_env(var_dir, **extra)
        started = time.monotonic()
        setup = run_setup(env, attempt + 20)
        setup_seconds = time.monotonic() - started
        port = free_port()
        server = start_server(env, port)
        url = f"ws://127.0.0.1:{port}"
        try:
            # Warm up: import everything a connection touches, then take the baseline.
            ctx = multiprocessing.get_context("fork")
            opened, done, stop_event = ctx.Queue(), ctx.Queue(), ctx.Event()
            warm = ctx.Process(
                target=_client_main,
                args=(url, setup["code"], setup["tokens"][:20], opened, done, stop_event),
            )
            warm.start()
            opened.get(timeout=120)
            stop_event.set()
            done.get(timeout=60)
            warm.join()
            time.sleep(1.0)
            baseline = rss_kb(server.pid)

            opened, done, stop_event = ctx.Queue(), ctx.Queue(), ctx.Event()
            tokens = setup["tokens"][20:]
            chunk = (len(tokens) + client_processes - 1) // client_processes
            clients = [
                ctx.Process(
                    target=_client_main,
                    args=(
                        url,
                        setup["code"],
                        tokens[i * chunk : (i + 1) * chunk],
                        opened,
                        done,
                        stop_event,
                    ),
                )
                for i in range(client_processes)
            ]
            connect_started = time.monotonic()
            for process in clients:
                process.start()
            results = [opened.get(timeout=1800) for _ in clients]
            connect_seconds = time.monotonic() - connect_started
            connected = sum(n for n, _ in results)
            failed = sum(f for _, f in results)
            time.sleep(3.0)
            loaded = rss_kb(server.pid)
            stop_event.set()
            alive = sum(done.get(timeout=300) for _ in clients)
            for process in clients:
                process.join(timeout=120)
        finally:
            stop(server)
    per_connection = (loaded - baseline) / connected if connected else float("nan")
    return [
        {
            "name": "idle websockets held by one process",
            "value": connected,
            "unit": "connections",
            "target": f">= {target}",
            "ok": connected >= target,
        },
        {"name": "failed to open", "value": failed, "unit": "connections"},
        {
            "name": "server RSS growth per connection",
            "value": round(per_connection, 1),
            "unit": "KB",
            "target": "<= 50 KB",
            "ok": per_connection <= 50,
        },
        {
            "name": "server RSS before / after",
            "value": f"{baseline // 1024} / {loaded // 1024}",
            "unit": "MB",
        },
        {
            "name": "connections still answering ping (sample of 200 per client)",
            "value": alive,
            "unit": "connections",
        },
        {
            "name": "time to open and authenticate all",
            "value": round(connect_seconds, 1),
            "unit": "s",
        },
        {
            "name": "setup (migrate + create visitors)",
            "value": round(setup_seconds, 1),
            "unit": "s",
        },
        {"name": "channel layer", "value": layer, "unit": ""},
        {
            "name": "file descriptor limit (hard limit of this machine caps the attempt)",
            "value": fd_limit,
            "unit": "fds",
        },
    ]
