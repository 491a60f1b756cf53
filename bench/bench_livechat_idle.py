"""Reconnection storm: N returning widgets reconnect at once (open + authenticate + resync).

After a deploy, a restart or a Redis blip every open widget reconnects at once. This bench
seeds N returning visitors in its own PostgreSQL database (``bench_reconnect``, kept between
runs; ``BENCH_DATABASE_URL`` names the server), each with a consent, a conversation and a
message, one in ten with an operator reply it has not seen. Then, against
``uvicorn openline.asgi:application --workers 2`` (DEBUG off, Redis Pub/Sub layer with its own
prefix), 4 client processes open every socket as fast as the server answers: handshake, the
``auth`` frame with the token and the last message id seen, until ``ready`` arrives with what
was missed. The sockets are held to measure memory per idle socket, a sample answers ``ping``.

Ceiling, same run, same server settings: a bare Channels consumer on the same layer that
accepts and answers the first frame (no database; like Openline's widget consumer it skips
Channels' per-message database housekeeping hop, and its start-up objects are frozen out of the
garbage collector's sight as in ``openline.asgi``). For comparison the same consumer also runs
on channels_redis' own Pub/Sub layer (one Redis subscription per socket). The client is ``bench/wsclient.py`` (raw
asyncio protocols, frames by hand): it costs a few percent of the server's CPU, reported as
"client CPU time". The 2 cores are shared, not pinned: 2 server workers and 4 client
processes; the open-files hard limit (20,000 per process) is why the sockets are spread over
two server workers and four client processes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import uvicorn_command

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
    process = subprocess.Popen(uvicorn_command(app, port=port, factory=factory), cwd=ROOT, env=env)
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


def run(args) -> list[dict]:
    """Measure a reconnection storm against Openline and a bare Channels consumer, one run."""
    from bench.storm import (
        _rss_sum,
        bench_database_url,
        bench_port,
        ensure_postgres,
        seed,
        start_workers,
        storm,
        worker_pids,
    )

    target = 2_000 if args.quick else 20_000
    warm = 200
    processes = 2 if args.quick else 4
    raise_fd_limit()
    url = bench_database_url(args.quick)
    ensure_postgres(url)
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    workers = WORKERS
    with tempfile.TemporaryDirectory(prefix="openline-bench-reconnect-") as var_dir:
        env = base_env(
            var_dir,
            DATABASE_URL=url,
            REDIS_URL=redis_url,
            OPENLINE_CHANNEL_PREFIX=f"bench-reconnect-{os.getpid()}",
            OPENLINE_DEBUG="false",
        )
        started = time.monotonic()
        seeded = seed(env, target + warm)
        setup_seconds = time.monotonic() - started
        firsts = [
            json.dumps(
                {"type": "auth", "token": token, "last_id": last_id, "language": "en"},
                separators=(",", ":"),
            ).encode()
            for token, last_id, _ in seeded["clients"]
        ]
        expected_missed = sum(n for _, _, n in seeded["clients"][warm:])
        # The ceiling: the same server and layer, a consumer that only answers; then the same
        # consumer on channels_redis' own Pub/Sub layer (one subscription per socket).
        bare, plain = (
            _ceiling(env | {"OPENLINE_CHANNEL_LAYER": kind}, firsts, warm, processes)
            for kind in (os.environ.get("OPENLINE_CHANNEL_LAYER", "pubsub"), "pubsub-plain")
        )
        port = bench_port()
        server = start_workers(env, port, workers, "openline.asgi:application")
        path = f"/ws/widget/{seeded['code']}/"
        try:
            storm(port, path, firsts[:warm], processes=1, concurrency=CONCURRENCY)
            time.sleep(1.0)
            baseline = _rss_sum(server.pid)
            before = set(worker_pids(server.pid))
            result = storm(
                port,
                path,
                firsts[warm:],
                processes=processes,
                concurrency=CONCURRENCY,
                rss_of=lambda: _rss_sum(server.pid),
            )
            result["restarts"] = len(before - set(worker_pids(server.pid)))
        finally:
            stop(server)
    rows = _rows(target, workers, bare, result, baseline, expected_missed, setup_seconds)
    plain_rate = plain["opened"] / plain["seconds"] if plain["seconds"] else 0.0
    rows.insert(
        3,
        {
            "name": "for comparison: the bare consumer on channels_redis' own Pub/Sub layer "
            f"({plain['seconds']:.1f} s, {plain['failed']} failed)",
            "value": round(plain_rate),
            "unit": "connections/s",
        },
    )
    return rows


def _ceiling(env: dict, firsts: list[bytes], warm: int, processes: int) -> dict:
    """Storm a bare Channels consumer (bench.storm.ceiling_app) under the same server command."""
    from bench.storm import bench_port, start_workers, storm

    port = bench_port()
    server = start_workers(env, port, WORKERS, "bench.storm:ceiling_app", factory=True)
    try:
        storm(port, "/ws/bare/", firsts[:warm], processes=1, concurrency=CONCURRENCY)
        return storm(port, "/ws/bare/", firsts[warm:], processes=processes, concurrency=CONCURRENCY)
    finally:
        stop(server)


WORKERS = 2  # server processes (uvicorn workers); each holds about half the sockets
CONCURRENCY = 128  # handshakes in flight per client process


def _rows(target, workers, bare, result, baseline, expected_missed, setup_seconds) -> list[dict]:
    rate = result["opened"] / result["seconds"] if result["seconds"] else 0.0
    bare_rate = bare["opened"] / bare["seconds"] if bare["seconds"] else 0.0
    ceiling = {
        "name": f"bare Channels consumer, {workers} workers, same layer, no database",
        "value": round(bare_rate),
        "unit": "connections/s",
    }
    per_socket = (result["rss_kb"] - baseline) / result["opened"] if result["opened"] else 0.0
    # Twenty thousand at the measured rate: the storm the issue names.
    for_20k = 20_000 / rate if rate else float("inf")
    return [
        {
            "name": f"reconnections (open + authenticate + resync), {workers} server workers",
            "value": round(rate),
            "unit": "reconnections/s",
            "ceiling": ceiling,
            "ratio": round(rate / bare_rate, 3) if bare_rate else None,
        },
        {
            "name": f"time to reconnect {result['opened']:,} sockets (20,000 at this rate)",
            "value": round(result["seconds"], 1),
            "unit": "s",
            "target": "20,000 < 20 s",
            "ok": for_20k < 20 and result["failed"] == 0,
            "ceiling": {**ceiling, "value": round(bare["seconds"], 1), "unit": "s"},
            "ratio": round(result["seconds"] / bare["seconds"], 2) if bare["seconds"] else None,
        },
        {
            "name": "ceiling: " + ceiling["name"],
            "value": round(bare_rate),
            "unit": "connections/s",
        },
        {
            "name": "reconnect latency p50 / p99 (Openline; ceiling)",
            "value": f"{result['p50'] * 1000:.0f} / {result['p99'] * 1000:.0f}; "
            f"{bare['p50'] * 1000:.0f} / {bare['p99'] * 1000:.0f}",
            "unit": "ms",
        },
        {
            "name": "sockets opened / failed / retried",
            "value": f"{result['opened']} / {result['failed']} / {result['retried']}",
            "unit": "",
            "ok": result["opened"] >= target and result["failed"] == 0,
            "target": f">= {target}",
        },
        {
            "name": "missed messages handed back by resync (expected)",
            "value": f"{result['missed']} ({expected_missed})",
            "unit": "messages",
            "ok": result["missed"] == expected_missed,
        },
        {
            "name": "server RSS growth per idle socket",
            "value": round(per_socket, 1),
            "unit": "KB",
            "target": "<= 50 KB",
            "ok": 0 < per_socket <= 50 and not result["restarts"],
        },
        {
            "name": "sockets still open when the storm was over / sample answering ping",
            "value": f"{result['still_open']} / {result['alive']}",
            "unit": "sockets",
        },
        {
            # uvicorn's supervisor kills a worker that misses its 5 s health check (a starved
            # machine); its sockets then reconnect too, so the figure is worth seeing.
            "name": "server workers restarted during the storm",
            "value": result["restarts"],
            "unit": "workers",
        },
        {
            "name": "client CPU time (all client processes; Openline storm, ceiling storm)",
            "value": f"{result['client_cpu']:.1f}, {bare['client_cpu']:.1f}",
            "unit": "s",
        },
        {"name": "errors seen (retried)", "value": json.dumps(result["errors"])[:300], "unit": ""},
        {"name": "setup (migrate + seed or reuse)", "value": round(setup_seconds, 1), "unit": "s"},
    ]
