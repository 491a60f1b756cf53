"""Obtained consents at scale: list pages and CSV export over real HTTP, on PostgreSQL.

Seeds 10,000,000 consent records (``--quick``: 200,000) into a separate database,
``openline_bench`` (or ``OPENLINE_BENCH_DATABASE_URL``), with COPY rather than the
services, then starts a real uvicorn subprocess on it and measures, through httpx:

* p95 of the first page and of a deep page (after following the cursor 50 times),
  for "one consent + Last 7 days" and for the unfiltered list (target < 50 ms);
* CSV export speed over 1,000,000 rows (target >= 50,000 rows/s) and the server's
  peak memory growth while streaming it (target < 100 MB).

The seed is reused when the table already holds the rows (and is resumed, a million
rows at a time, if it was interrupted), so only the first run takes minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FULL_ROWS = 10_000_000
QUICK_ROWS = 200_000
VISITORS = 200_000
CHUNK = 500_000
SPAN_DAYS = 365
AGREEMENTS = [
    "Website privacy notice",
    "Messenger notice",
    "CRM notice",
    "Shop notice",
    "Old notice",
]
# Share of records per agreement, by id % 10.
AGREEMENT_OF = [0, 0, 0, 0, 1, 1, 2, 2, 3, 4]
ORIGINS = ["livechat"] * 12 + ["telegram"] * 3 + ["whatsapp"] * 2 + ["facebook", "viber", "crm"]
METHOD = {"livechat": "clicked_accept", "crm": "saved_to_crm"}


def bench_url(quick: bool = False) -> str:
    """Return the benchmark database URL (never the test or the real database).

    ``--quick`` runs use their own database so they never wipe the 10,000,000-row seed.
    """
    explicit = os.environ.get("OPENLINE_BENCH_DATABASE_URL")
    if explicit:
        return explicit + ("_quick" if quick else "")
    base = os.environ.get("DATABASE_URL", "") or "postgres://postgres@127.0.0.1:5432/test"
    if not base.startswith(("postgres://", "postgresql://")):
        base = "postgres://postgres@127.0.0.1:5432/test"
    return base.rsplit("/", 1)[0] + ("/openline_bench_quick" if quick else "/openline_bench")


def _env(url: str) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        OPENLINE_DEBUG="false",
        OPENLINE_LOG_LEVEL="WARNING",
        OPENLINE_TASKS_BACKEND="django_tasks.backends.dummy.DummyBackend",
        DJANGO_SETTINGS_MODULE="openline.settings",
    )
    env.pop("REDIS_URL", None)
    return env


def _manage(url: str, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_env(url),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def ensure_database(url: str) -> None:
    """Create the benchmark database if needed and migrate it."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    _manage(url, "migrate", "--no-input")


SETUP_SCRIPT = r"""
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from openline.accounts.models import User
from openline.accounts.services import create_staff_user
from openline.consent.models import Agreement
from openline.consent.services import create_agreement
from openline.openchannels.models import OpenChannel
from openline.openchannels.services import create_open_channel

names = json.loads(%(names)r)
admin = User.objects.filter(username="bench-admin").first() or create_staff_user(
    username="bench-admin", password="bench-password-123", role="administrator", display_name="Bench Admin")
agreements = []
for name in names:
    a = Agreement.objects.filter(name=name).first() or create_agreement(
        actor=admin, name=name, text=f"{name}: we process your data to answer you.", allow_html=False)
    agreements.append({"id": a.pk, "version": a.current_version.pk, "sha": a.current_version.texts.get().sha256})
channel = OpenChannel.objects.filter(name="Bench site").first() or create_open_channel(
    actor=admin, name="Bench site", connectors=["livechat"])
session = SessionStore()
session[SESSION_KEY] = str(admin.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = admin.get_session_auth_hash()
session.set_expiry(86400)
session.save()
print("BENCH" + json.dumps({"agreements": agreements, "channel": channel.pk, "admin": admin.pk,
                            "session": session.session_key}))
"""


def setup_objects(url: str) -> dict:
    """Create the admin, consents and channel through the services; return ids and a session."""
    out = _manage(url, "shell", "-c", SETUP_SCRIPT % {"names": json.dumps(AGREEMENTS)})
    line = next(line for line in out.splitlines() if line.startswith("BENCH"))
    return json.loads(line[5:])


RECORD_COLUMNS = (
    "id",
    "uuid",
    "created_at",
    "language",
    "text_sha256",
    "state",
    "method",
    "origin",
    "visitor_label",
    "source_type",
    "source_id",
    "source_label",
    "address",
    "ip",
    "ip_missing_reason",
    "user_agent",
    "evidence",
    "agreement_id",
    "channel_id",
    "conversation_id",
    "version_id",
    "visitor_id",
)


def _seed_visitors(conn, channel: int) -> None:
    have = conn.execute("SELECT count(*) FROM conversations_visitor").fetchone()[0]
    if have >= VISITORS:
        return
    cols = "public_id, origin, channel_id, external_id, name, email, phone, language, user_agent, created_at"
    now = dt.datetime.now(dt.UTC).isoformat()
    with conn.cursor().copy(f"COPY conversations_visitor ({cols}) FROM STDIN") as copy:
        lines = []
        for i in range(have, VISITORS):
            lines.append(
                f"00000000-0000-4000-9000-{i:012x}\tlivechat\t{channel}\t\tClient {i}\t"
                f"client{i}@example.com\t\ten\tMozilla/5.0\t{now}\n"
            )
            if len(lines) >= 50_000:
                copy.write("".join(lines))
                lines = []
        copy.write("".join(lines))
    conn.commit()


def _record_lines(
    start: int, stop: int, total: int, setup: dict, visitor_ids: list[int], began: dt.datetime
):
    agreements = setup["agreements"]
    channel = setup["channel"]
    step = dt.timedelta(days=SPAN_DAYS) / total
    evidence = json.dumps(
        {"channel_consent_settings": {"consent_enabled": True, "agreement_id": agreements[0]["id"]}}
    )
    lines = []
    for i in range(start, stop):
        a = agreements[AGREEMENT_OF[i % 10]]
        origin = ORIGINS[i % len(ORIGINS)]
        created = (began + step * i).isoformat()
        visitor = visitor_ids[(i * 7919) % len(visitor_ids)]
        if origin in ("livechat", "crm"):
            ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            reason = ""
            address = f"https://shop.example.com/p/{i % 5000}"
        else:
            ip = "\\N"
            reason = "The channel does not tell the client's IP address."
            address = ""
        lines.append(
            f"{i + 1}\t00000000-0000-4000-8000-{i + 1:012x}\t{created}\ten\t{a['sha']}\tgiven\t"
            f"{METHOD.get(origin, 'continued_chatting')}\t{origin}\tVisitor {visitor:08x}\twebsite\t\t"
            f"shop.example.com\t{address}\t{ip}\t{reason}\tMozilla/5.0 (Bench)\t{evidence}\t{a['id']}\t"
            f"{channel}\t\\N\t{a['version']}\t{visitor}\n"
        )
    return "".join(lines)


def seed(url: str, rows: int, setup: dict, log) -> float:
    """COPY ``rows`` records into the benchmark database (resumable); return seconds spent."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text NOT NULL)"
        )
        conn.commit()
        meta = dict(conn.execute("SELECT key, value FROM bench_meta").fetchall())
        have = conn.execute("SELECT coalesce(max(id), 0) FROM consent_consentrecord").fetchone()[0]
        began_text = meta.get("began")
        fresh = began_text is None or int(meta.get("target", 0)) != rows
        if not fresh and dt.datetime.fromisoformat(began_text) + dt.timedelta(
            days=SPAN_DAYS + 2
        ) < dt.datetime.now(dt.UTC):
            fresh = True  # the seed went stale: "Last 7 days" would be empty
        if not fresh and have >= rows and meta.get("indexed") == "1":
            return 0.0
        conn.execute("SET session_replication_role = replica")  # bulk load: skip FK triggers
        if fresh and have:
            log(f"   re-seeding: dropping {have:,} old rows")
            from openline.consent import triggers

            for sql in triggers.drop_sql("postgresql"):
                conn.execute(sql)
            conn.execute("TRUNCATE consent_consentrecord, consent_sealbatch")
            for sql in triggers.install_sql("postgresql"):
                conn.execute(sql)
            have = 0
        if fresh:
            began = dt.datetime.now(dt.UTC) - dt.timedelta(days=SPAN_DAYS)
            conn.execute("DELETE FROM bench_meta")
            conn.execute(
                "INSERT INTO bench_meta VALUES ('began', %s), ('target', %s), ('indexed', '0')",
                [began.isoformat(), str(rows)],
            )
        else:
            began = dt.datetime.fromisoformat(began_text)
        # Bulk loads build indexes once at the end: remember them, drop them, recreate later.
        defs = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'consent_consentrecord' "
            "AND indexname NOT LIKE '%%pkey'"
        ).fetchall()
        if meta.get("indexed", "1") == "1":
            # All of the schema's indexes are present: remember exactly these.
            conn.execute("DELETE FROM bench_meta WHERE key LIKE 'index:%%'")
        for name, definition in defs:
            conn.execute(
                "INSERT INTO bench_meta VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                [f"index:{name}", definition],
            )
            constraint = conn.execute(
                "SELECT conname FROM pg_constraint WHERE conname = %s", [name]
            ).fetchone()
            if constraint:
                conn.execute(f'ALTER TABLE consent_consentrecord DROP CONSTRAINT "{name}"')
            else:
                conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        conn.execute("UPDATE bench_meta SET value = '0' WHERE key = 'indexed'")
        conn.commit()
        _seed_visitors(conn, setup["channel"])
        visitor_ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM conversations_visitor ORDER BY id LIMIT %s", [VISITORS]
            )
        ]
        columns = ", ".join(RECORD_COLUMNS)
        position = have
        while position < rows:
            stop = min(rows, position + CHUNK)
            with conn.cursor().copy(f"COPY consent_consentrecord ({columns}) FROM STDIN") as copy:
                for part in range(position, stop, 50_000):
                    copy.write(
                        _record_lines(
                            part, min(stop, part + 50_000), rows, setup, visitor_ids, began
                        )
                    )
            conn.commit()  # each chunk is kept: an interrupted seed resumes from here
            position = stop
            log(f"   seeded {position:,}/{rows:,} rows ({time.monotonic() - started:.0f}s)")
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('consent_consentrecord', 'id'), %s)", [rows]
        )
        conn.execute("SET maintenance_work_mem = '1GB'")
        for key, definition in conn.execute(
            "SELECT key, value FROM bench_meta WHERE key LIKE 'index:%%'"
        ).fetchall():
            name = key.split(":", 1)[1]
            exists = conn.execute(
                "SELECT 1 FROM pg_indexes WHERE indexname = %s", [name]
            ).fetchone()
            if not exists:
                conn.execute(definition)
                conn.commit()
                log(f"   index {name} built ({time.monotonic() - started:.0f}s)")
        conn.execute("UPDATE bench_meta SET value = '1' WHERE key = 'indexed'")
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE consent_consentrecord")
        conn.execute("VACUUM ANALYZE conversations_visitor")
    return time.monotonic() - started


class Server:
    """A real uvicorn subprocess serving Openline on the benchmark database."""

    def __init__(self, url: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "openline.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=_env(url),
        )

    def wait(self) -> None:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.base}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("uvicorn did not start")

    def memory(self, field: str) -> int:
        """Return VmRSS or VmHWM of the server, in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


CURSOR = re.compile(r'rel="next" href="\?[^"]*cursor=([A-Za-z0-9_-]+)"')


def measure_list(client, base: str, query: str, repeat: int) -> tuple[float, float, int]:
    """Return p95 ms of the first page and of the page after following the cursor 50 times."""

    def timed(url: str) -> tuple[float, str]:
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        return elapsed, response.text

    first_url = f"{base}/console/obtained-consents/?{query}"
    for _ in range(3):  # warm up: template cache, first connections, planner statistics
        timed(first_url)
    first = [timed(first_url)[0] for _ in range(repeat)]
    url = first_url
    hops = 0
    for _ in range(50):
        _, body = timed(url)
        match = CURSOR.search(body)
        if not match:
            break
        url = f"{base}/console/obtained-consents/?{query}{'&' if query else ''}cursor={match.group(1)}"
        hops += 1
    deep = [timed(url)[0] for _ in range(repeat)]
    return p95(first), p95(deep), hops


def measure_export(
    client, server: Server, base: str, rows: int, began: dt.datetime, total: int
) -> tuple[float, int, float]:
    """Stream a CSV export of about ``rows`` records; return rows/s, rows, peak memory growth (MB)."""
    # Records are spread evenly over the seeded year: a date range gives the wanted count.
    days = max(1, int(SPAN_DAYS * rows / total)) if rows < total else SPAN_DAYS + 1
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days - 1)).date()
    query = f"period=custom&date_from={since.isoformat()}&format=csv"
    peak = {"rss": 0}
    baseline = server.memory("VmRSS")
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["rss"] = max(peak["rss"], server.memory("VmRSS"))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = 0
    started = time.perf_counter()
    with client.stream(
        "GET", f"{base}/console/obtained-consents/export/?{query}", timeout=600
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    exported = lines - 1  # header
    return exported / elapsed, exported, max(0, peak["rss"] - baseline) / 1e6


def run(args) -> list[dict]:
    import httpx

    log = lambda text: print(text, flush=True)  # noqa: E731
    url = bench_url(args.quick)
    rows = QUICK_ROWS if args.quick else FULL_ROWS
    ensure_database(url)
    setup = setup_objects(url)
    seconds = seed(url, rows, setup, log)
    log(
        f"   seed: {'reused' if not seconds else f'{seconds:.0f}s'} ({rows:,} records in {url.rsplit('/', 1)[1]})"
    )
    import psycopg

    with psycopg.connect(url) as conn:
        began = dt.datetime.fromisoformat(
            conn.execute("SELECT value FROM bench_meta WHERE key = 'began'").fetchone()[0]
        )
    server = Server(url)
    results = []
    try:
        server.wait()
        client = httpx.Client(cookies={"sessionid": setup["session"]}, timeout=60)
        repeat = 20 if args.quick else 40
        consent = setup["agreements"][0]["id"]
        for label, query in (
            ("one consent + Last 7 days", f"consent={consent}&period=last7"),
            ("unfiltered", ""),
        ):
            first, deep, hops = measure_list(client, server.base, query, repeat)
            results.append(
                dict(
                    name=f"list {label}: first page p95",
                    value=round(first, 1),
                    unit="ms",
                    target="< 50 ms",
                    ok=first < 50,
                )
            )
            results.append(
                dict(
                    name=f"list {label}: page after {hops} cursor hops p95",
                    value=round(deep, 1),
                    unit="ms",
                    target="< 50 ms",
                    ok=deep < 50 and (hops == 50 or args.quick),
                )
            )
        export_rows = 1_000_000 if not args.quick else rows
        speed, exported, growth = measure_export(
            client, server, server.base, export_rows, began, rows
        )
        results.append(
            dict(
                name=f"CSV export ({exported:,} rows)",
                value=round(speed),
                unit="rows/s",
                target=">= 50,000 rows/s",
                ok=speed >= 50_000,
            )
        )
        results.append(
            dict(
                name="CSV export: server peak memory growth",
                value=round(growth, 1),
                unit="MB",
                target="< 100 MB",
                ok=growth < 100,
            )
        )
        client.close()
    finally:
        server.stop()
    results.append(dict(name="seeded records", value=rows, unit="rows"))
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)
