"""Consent capture (accepted live chat starts) next to the database's own ceiling, in one run.

An accepted start — ``POST /widget/<code>/start`` with the consent the widget showed — creates
a visitor, a consent record, a conversation and the first message, and is answered 201 only after
its transaction committed. Measured in one run, on PostgreSQL (``BENCH_DATABASE_URL``, default
database ``bench_capture``, created and migrated if missing; each run seeds its own channel) and
Redis (``REDIS_URL``, a key prefix of its own), ``manage.py serve --workers 2`` with DEBUG off
(its task worker and messengers loop run too, so records are sealed during the load, as in
production), 16 kept-open connections from ``wrk``:

* **captures/s** (each request with its own ``Idempotency-Key``, as the widget sends), average
  and p99 latency, non-2xx answers (must be 0); afterwards the rows are
  counted: consent records = visitors = conversations = messages = acknowledged 201s (plus the
  at most 16 requests still in flight when wrk stopped: committed, but their answers uncounted);
  then every record must be sealed by the running worker within a minute;
* **ceiling**: raw durable single-row INSERTs of a record-shaped row (autocommit, so one commit
  and one WAL flush each) from 16 psycopg clients — what PostgreSQL itself takes on this machine;
* a **bare ASGI app** answering a no-op under the same uvicorn (2 workers): the HTTP stack's
  ceiling without Django or a database;
* a **bare Django view** doing one such INSERT through Django's own handler and middleware
  under the same server: what one commit per request costs when Django runs each sync view on
  the process's single thread for sync code;
* Openline's own **/healthz** (no database) through the full middleware stack.

Every figure carries ``ratio`` = figure / raw-INSERT ceiling. The ratios read as: the bare
ASGI app is many times the ceiling (HTTP parsing is not the limit); a bare Django view with one
INSERT and /healthz reach a small fraction, because Django's handler and middleware cost about
a millisecond of CPU per request and run sync views one at a time per process.

The capture path measured: a new visitor's start never enters Django's handler. It is served
on the event loop (``livechat/asgi.py`` -> ``livechat/start_lean.py``): the view's checks that
need no database, the start rate limit (one Redis round trip), then ONE data-modifying
statement through ``openline.core.pgasync`` (``livechat/capture_pg.py``, SQL built in
``capture_sql.py``) writing the start key, visitor, conversation, consent record, message and
webhook outbox rows; the answer, the events and the sealing follow the commit. The starts that
arrive on a worker while an earlier one is in flight share one transaction (group commit:
``pgasync.fetchone_batched``, one pipeline and one WAL flush for several statements). So a
capture costs at most one PostgreSQL round trip and one commit, like a raw INSERT, plus the
HTTP, Redis and Python work around it (about 2 ms of CPU per capture on this machine, and
0.7-1 ms of PostgreSQL CPU for its five rows, their indexes and foreign-key checks); on this
2-core machine the CPU shared by the two workers, PostgreSQL, Redis and wrk is what limits it. ``BENCH_CAPTURE_FAST=0`` runs the server with
``OPENLINE_CAPTURE_FAST=0``: every start through the Django view (the ORM path), to compare.

Cores: the machine has 2 shared cores. The server's two web workers, its task worker and
PostgreSQL share them with ``wrk``, which runs one thread (it uses a few percent of one core at
these rates) and is not pinned; pinning it with ``taskset`` to one core would take that core
from a web worker. The raw-INSERT ceiling runs with the server stopped (its 16 psycopg clients
are Python threads in this process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from bench.bench_livechat_idle import free_port, stop
from bench.wrk import WrkResult, ensure_wrk, post_json_script, run_wrk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONNECTIONS = 16
TARGET_RATIO = 0.10  # captures/s at least 10% of the raw durable single-row INSERT ceiling
DB_NAME = "bench_capture"

SEED = r"""
import json, sys, django
django.setup()
from openline.accounts.models import Role, User
from openline.consent.services import create_agreement
from openline.openchannels.policy import consent_offer
from openline.openchannels.services import create_open_channel

admin = User.objects.filter(username="bench-capture-admin").first()
if admin is None:
    admin = User.objects.create_user("bench-capture-admin", password=None,
                                     role=Role.ADMINISTRATOR)
agreement = create_agreement(actor=admin, name="Bench capture notice " + sys.argv[1],
                             text="We process your name, messages and IP address to answer you.",
                             allow_html=False)
channel = create_open_channel(actor=admin, name="Bench capture " + sys.argv[1], operators=[],
                              connectors=["livechat"], consent_enabled=True, agreement=agreement)
shown = consent_offer(channel, "en")
print("RESULT" + json.dumps({"code": channel.code, "channel": channel.pk,
      "consent": {"version": shown.version.id, "language": shown.language,
                  "sha256": shown.sha256}}))
"""

RECORD_TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_raw_record (id bigserial PRIMARY KEY, uuid uuid NOT NULL"
    " UNIQUE, created_at timestamptz NOT NULL, agreement_id int NOT NULL, version_id int NOT NULL,"
    " language varchar(10) NOT NULL, text_sha256 varchar(64) NOT NULL, state varchar(16) NOT NULL,"
    " method varchar(32) NOT NULL, origin varchar(16) NOT NULL, visitor_id bigint,"
    " visitor_label varchar(64) NOT NULL, channel_id int, conversation_id bigint,"
    " source_type varchar(16) NOT NULL, source_id varchar(100) NOT NULL,"
    " source_label varchar(300) NOT NULL, address text NOT NULL, ip inet,"
    " ip_missing_reason varchar(200) NOT NULL, user_agent text NOT NULL, evidence jsonb NOT NULL)"
)
RECORD_INSERT = (
    "INSERT INTO bench_raw_record (uuid, created_at, agreement_id, version_id, language,"
    " text_sha256, state, method, origin, visitor_id, visitor_label, channel_id, conversation_id,"
    " source_type, source_id, source_label, address, ip, ip_missing_reason, user_agent, evidence)"
    " VALUES (%s, now(), 1, 1, 'en', %s, 'given', 'clicked_accept', 'livechat', 1, 'Visitor 1a2b',"
    " 1, 1, 'website', 'abcdef', 'shop.example', 'https://shop.example/pricing', '203.0.113.7',"
    " '', 'Mozilla/5.0 (X11; Linux x86_64) bench', %s)"
)
EVIDENCE = json.dumps({"widget": "livechat", "shown_sha256": "a" * 64, "channel": "Bench"})

# The widget sends one Idempotency-Key per start (contract A): so does the load, one per request.
UNIQUE_KEYS = r"""
local counter = 0
local prefix = "bench-" .. os.time() .. "-" .. math.random(100000000, 999999999)
request = function()
  counter = counter + 1
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Idempotency-Key"] = prefix .. "-" .. counter
  return wrk.format(nil, nil, headers, nil)
end
"""

# A bare ASGI app (no Django, no database) under the same uvicorn: the HTTP stack's ceiling.
BARE_ASGI = "bench.capture_apps:bare_asgi"
# Openline's settings with a one-view URLconf: Django's handler + middleware + one INSERT.
BARE_DJANGO_SETTINGS = "bench.capture_apps"


def bench_database_url(quick: bool) -> str:
    """Return this benchmark's PostgreSQL URL (BENCH_DATABASE_URL, else its own database)."""
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return explicit
    return f"postgres://postgres@127.0.0.1:5432/{DB_NAME}{'_quick' if quick else ''}"


def _ensure_database(url: str, env: dict) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{done.stderr[-3000:]}")


def _env(url: str, redis_url: str, var_dir: str) -> dict:
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
    env.update(
        DATABASE_URL=url,
        REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="openline.settings",
        OPENLINE_ENV="development",
        OPENLINE_DEBUG="false",
        OPENLINE_LOG_LEVEL="WARNING",
        OPENLINE_VAR_DIR=var_dir,
        OPENLINE_SECRET_KEY="bench-capture-secret-key-" + "x" * 40,
        OPENLINE_SECRETS_KEYS=Fernet.generate_key().decode(),
        OPENLINE_ALLOWED_HOSTS="127.0.0.1,localhost",
        OPENLINE_CHANNEL_PREFIX=f"bench_capture_{os.getpid()}",
        OPENLINE_DEMO_SITE="0",
        # Every request comes from 127.0.0.1: the per-IP start limit must not refuse the load.
        OPENLINE_LIVECHAT_RATE_START="1000000/1000000",
        OPENLINE_TASKS_BACKEND="django_tasks_db.DatabaseBackend",
    )
    if os.environ.get("BENCH_CAPTURE_FAST", "").strip() == "0":
        env["OPENLINE_CAPTURE_FAST"] = "0"
    return env


def _seed(env: dict) -> dict:
    tag = uuid.uuid4().hex[:8]
    out = subprocess.run(
        [sys.executable, "-c", SEED, tag],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise RuntimeError(f"seeding failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def _wait_http(port: int, path: str = "/healthz", seconds: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} did not answer {path}")


def _uvicorn(app: str, port: int, env: dict) -> subprocess.Popen:
    # The same uvicorn flags as `manage.py serve --workers 2`.
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "2", "--no-proxy-headers", "--no-server-header"]
    command += ["--log-level", "warning", "--no-access-log", "--backlog", "4096"]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def _counts(url: str, channel: int) -> dict:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM consent_consentrecord WHERE channel_id = %(c)s),"
            " (SELECT count(*) FROM conversations_visitor WHERE channel_id = %(c)s),"
            " (SELECT count(*) FROM conversations_conversation WHERE channel_id = %(c)s),"
            " (SELECT count(*) FROM conversations_message m JOIN conversations_conversation c"
            "  ON c.id = m.conversation_id WHERE c.channel_id = %(c)s),"
            " (SELECT count(*) FROM livechat_startkey WHERE channel_id = %(c)s),"
            " (SELECT count(*) FROM consent_consentrecord WHERE channel_id = %(c)s"
            "  AND id > (SELECT coalesce(max(last_record_id), 0) FROM consent_sealbatch))",
            {"c": channel},
        ).fetchone()
    names = ("records", "visitors", "conversations", "messages", "keys", "unsealed")
    return dict(zip(names, row, strict=True))


def _wait_sealed(url: str, channel: int, seconds: float) -> tuple[int, float]:
    started = time.monotonic()
    left = _counts(url, channel)["unsealed"]
    while left and time.monotonic() - started < seconds:
        time.sleep(0.5)
        left = _counts(url, channel)["unsealed"]
    return left, time.monotonic() - started


def raw_insert_ceiling(url: str, seconds: float, clients: int = CONNECTIONS) -> float:
    """Durable single-row INSERTs/s of a consent-record-shaped row from ``clients`` connections."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_record")
        conn.execute(RECORD_TABLE)
    counts = [0] * clients
    deadline = time.perf_counter() + seconds

    def writer(n: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            i = 0
            while time.perf_counter() < deadline:
                conn.execute(RECORD_INSERT, [uuid.uuid4(), "b" * 64, EVIDENCE])
                i += 1
            counts[n] = i

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def _row(name: str, result: WrkResult, ceiling: float, **extra) -> dict:
    return {
        "name": name,
        "value": round(result.rate),
        "unit": "requests/s",
        "ceiling": {
            "name": "raw durable single-row INSERTs",
            "value": round(ceiling),
            "unit": "rows/s",
        },
        "ratio": round(result.rate / ceiling, 4) if ceiling else None,
        "avg_ms": round(result.avg_ms, 2),
        "p99_ms": round(result.p99_ms, 2),
        "non2xx": result.non2xx,
        "errors": result.errors,
        **extra,
    }


def run(args) -> list[dict]:
    ensure_wrk()
    seconds = 5.0 if args.quick else 15.0
    url = bench_database_url(args.quick)
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="openline-bench-capture-") as var_dir:
        env = _env(url, redis_url, var_dir)
        _ensure_database(url, env)
        seed = _seed(env)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
            + ["--workers", "2", "--demo-port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_http(port)
            base = f"http://127.0.0.1:{port}"
            body = json.dumps(
                {
                    "text": "Hello, I would like to ask about my order",
                    "language": "en",
                    "page_url": "https://shop.example/pricing",
                    "consent": seed["consent"],
                }
            )
            script = post_json_script(body, {"User-Agent": "Mozilla/5.0 (X11; Linux) bench"})
            script += UNIQUE_KEYS
            start_url = f"{base}/widget/{seed['code']}/start"
            warm = run_wrk(start_url, connections=4, threads=1, seconds=2, lua_script=script)
            before = _counts(url, seed["channel"])
            capture = run_wrk(
                start_url, connections=CONNECTIONS, threads=1, seconds=seconds, lua_script=script
            )
            after = _counts(url, seed["channel"])
            health = run_wrk(f"{base}/healthz", connections=CONNECTIONS, threads=1, seconds=seconds)
            unsealed, waited = _wait_sealed(url, seed["channel"], 60)
        finally:
            stop(server)
        ceiling = raw_insert_ceiling(url, seconds)
        bare = _bare_figures(url, env, seconds)
    acknowledged = capture.requests - capture.non2xx
    kinds = ("records", "visitors", "conversations", "messages", "keys")
    stored = {k: after[k] - before[k] for k in kinds}
    # wrk stops with up to CONNECTIONS requests in flight: they commit, but nobody counts their 201.
    same = len(set(stored.values())) == 1
    all_stored = (
        same and acknowledged <= stored["records"] <= acknowledged + CONNECTIONS and not warm.non2xx
    )
    clean = capture.non2xx == 0 and capture.errors == 0
    ratio = capture.rate / ceiling if ceiling else 0.0
    rows = [
        _row(
            "Accepted live chat starts (visitor + consent record + conversation + message)",
            capture,
            ceiling,
            unit="captures/s",
            target=f">= {TARGET_RATIO:.0%} of the raw-INSERT ceiling, 0 non-2xx",
            ok=ratio >= TARGET_RATIO and clean and all_stored and unsealed == 0,
        ),
        {
            "name": "stored: records / visitors / conversations / messages / start keys vs 201s",
            "value": f"{stored['records']} / {stored['visitors']} / {stored['conversations']}"
            f" / {stored['messages']} / {stored['keys']} for {acknowledged} acknowledged"
            f" (+ at most {CONNECTIONS} in flight when wrk stopped)",
            "unit": "",
            "ok": all_stored,
        },
        {
            "name": "captures sealed after the load",
            "value": f"{'all' if not unsealed else f'{unsealed} not'} sealed {waited:.1f} s after",
            "unit": "",
            "ok": unsealed == 0,
        },
        {
            "name": "ceiling: raw durable single-row INSERTs, record-shaped, 16 psycopg clients",
            "value": round(ceiling),
            "unit": "rows/s",
        },
        _row("bare ASGI app, no-op, same uvicorn (2 workers)", bare["asgi"], ceiling),
        _row("bare Django view doing one INSERT, same server", bare["django"], ceiling),
        _row("Openline /healthz (no database), same server", health, ceiling),
        {"name": "load average (1 min) when the run started", "value": round(load, 2), "unit": ""},
    ]
    return rows


def _bare_figures(url: str, env: dict, seconds: float) -> dict[str, WrkResult]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_record")
        conn.execute(RECORD_TABLE)
    figures = {}
    for key, app, settings in (
        ("asgi", BARE_ASGI, "openline.settings"),
        ("django", "bench.capture_apps:django_app", BARE_DJANGO_SETTINGS),
    ):
        port = free_port()
        server = _uvicorn(app, port, dict(env, DJANGO_SETTINGS_MODULE=settings))
        try:
            _wait_http(port, "/")
            figures[key] = run_wrk(
                f"http://127.0.0.1:{port}/", connections=CONNECTIONS, threads=1, seconds=seconds
            )
        finally:
            stop(server)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_record")
    return figures
