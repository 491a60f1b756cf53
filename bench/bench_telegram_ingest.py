"""Sustained Telegram webhook ingestion next to the raw durable-insert ceiling, in one run.

PostgreSQL (its own benchmark database, ``bench_telegram_ingest``), uvicorn with 2 workers as
``manage.py serve --workers 2`` runs them, DEBUG off, on a port in 18700-18799. 16 concurrent senders post signed Telegram updates (the secret-token header), 10% of them
repeats of updates already sent (Telegram retries), from ~200 clients. Measured:

* **ingestion**: webhook updates accepted per second, each stored exactly once (checked after
  the run: one InboundEvent per distinct update_id, none lost, none doubled);
* **ceiling**: raw durable single-row INSERTs (same table shape, same unique key, autocommit)
  from 16 psycopg clients in the same run — what the database itself takes;
* **processing**: the stored backlog turned into visitors, CRM items, conversations, messages,
  warnings and consent records by ``connectors.ingest.process_pending`` (one process).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile

from bench.common import (
    ROOT,
    bench_port,
    database_url,
    ensure_database,
    figure,
    raw_insert_rate,
    server_env,
    stop_process,
    uvicorn_command,
    wait_healthy,
)
from bench.loadgen import build_request, run_load

TARGET = 500.0  # updates/s (issue: at least 500 on this machine)
CONCURRENCY = 16
SECRET = "bench-TgWebhookSecret-0123456789abcdef"
TOKEN = "bench-telegram-webhook-token"

SETUP = r"""
import json, sys, django
django.setup()
from django.db import transaction
from openline.consent.services import create_agreement
from openline.consent.models import Agreement
from openline.connectors.models import InboundEvent
from openline.core.secrets import encrypt_json
from openline.openchannels.models import Connector, OpenChannel

secret, token = sys.argv[1], sys.argv[2]
agreement = Agreement.objects.filter(name="Bench messenger notice").first()
if agreement is None:
    agreement = create_agreement(actor=None, name="Bench messenger notice",
                                 text="We process your data to answer you.", allow_html=False)
channel, _ = OpenChannel.objects.get_or_create(name="Bench Telegram")
OpenChannel.objects.filter(pk=channel.pk).update(consent_enabled=True, agreement=agreement)
connector, _ = Connector.objects.get_or_create(channel=channel, kind="telegram")
Connector.objects.filter(pk=connector.pk).update(
    secrets=encrypt_json({"bot_token": "999000111:bench-token", "secret_token": secret}),
    webhook_token=token, state="connected", mode="webhook", is_enabled=True)
InboundEvent.objects.filter(connector=connector).delete()
print("RESULT" + json.dumps({"connector": connector.pk}))
"""

PROCESS = r"""
import json, time, django
django.setup()
from openline.connectors.ingest import process_pending
from openline.connectors.models import InboundEvent
connector = int(__import__("sys").argv[1])
started = time.perf_counter()
while InboundEvent.objects.filter(connector_id=connector, state="pending").exists():
    process_pending(connector_id=connector, limit=500)
    if time.perf_counter() - started > 60:
        break
seconds = time.perf_counter() - started
done = InboundEvent.objects.filter(connector_id=connector, state="done").count()
print("RESULT" + json.dumps({"done": done, "seconds": seconds}))
"""


def _script(env: dict, code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise RuntimeError(f"bench script failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def _update(update_id: int, client: int) -> bytes:
    chat = 111_000_000 + client
    body = {
        "update_id": update_id,
        "message": {
            "message_id": update_id % 1_000_000,
            "from": {
                "id": chat,
                "is_bot": False,
                "first_name": f"Клиент {client}",
                "language_code": "en",
            },
            "chat": {"id": chat, "first_name": f"Клиент {client}", "type": "private"},
            "date": 1767225600,
            "text": f"Hello, I need help with order {update_id} ✓",
        },
    }
    return json.dumps(body).encode()


def _requests(
    port: int, count: int, first_id: int, rng: random.Random
) -> tuple[list[bytes], set[int]]:
    sent_ids: list[int] = []
    requests = []
    next_id = first_id
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    for _ in range(count):
        if sent_ids and rng.random() < 0.10:
            update_id = rng.choice(sent_ids)  # a retried delivery
        else:
            update_id = next_id
            next_id += 1
            sent_ids.append(update_id)
        requests.append(
            build_request(
                host="127.0.0.1",
                port=port,
                path=f"/hooks/telegram/{TOKEN}/",
                body=_update(update_id, update_id % 200),
                headers=headers,
            )
        )
    return requests, set(sent_ids)


def _stored(url: str, connector: int, ids: set[int]) -> tuple[int, int]:
    import psycopg

    keys = [str(i) for i in ids]
    with psycopg.connect(url) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT event_key) FROM connectors_inboundevent"
            " WHERE connector_id = %s AND event_key = ANY(%s)",
            [connector, keys],
        ).fetchone()
    return rows, distinct


INTAKE_TABLE = (
    "CREATE TABLE bench_raw (id bigserial PRIMARY KEY, connector_id int NOT NULL,"
    " event_key varchar(160) NOT NULL, event jsonb NOT NULL, state varchar(10) NOT NULL,"
    " attempts int NOT NULL, last_error varchar(300) NOT NULL,"
    " received_at timestamptz NOT NULL, processed_at timestamptz,"
    " UNIQUE (connector_id, event_key))"
)
INTAKE_INSERT = (
    "INSERT INTO bench_raw (connector_id, event_key, event, state, attempts, last_error,"
    " received_at) VALUES (1, %s, %s, 'pending', 0, '', now()) ON CONFLICT DO NOTHING"
)


def raw_insert_ceiling(url: str, seconds: float, clients: int = CONCURRENCY) -> float:
    """Durable single-row INSERTs/s of an intake-shaped row from ``clients`` connections."""
    body = json.dumps({"kind": "message", "text": "Hello, I need help ✓"})
    return raw_insert_rate(
        url,
        table_sql=INTAKE_TABLE,
        insert_sql=INTAKE_INSERT,
        params=lambda n, i: [f"{n}:{i}", body],
        clients=clients,
        seconds=seconds,
    )


def run(args) -> list[dict]:
    url = database_url("bench_telegram_ingest")
    ensure_database(url)
    from cryptography.fernet import Fernet

    with tempfile.TemporaryDirectory(prefix="openline-bench-tg-") as var_dir:
        env = server_env(url)
        env.update(
            OPENLINE_VAR_DIR=var_dir,
            OPENLINE_SECRETS_KEYS=Fernet.generate_key().decode(),
            OPENLINE_ALLOWED_HOSTS="127.0.0.1",
            OPENLINE_SECRET_KEY="bench-secret-key-" + "x" * 40,
            # The webhook's processing kick is a real durable task, as in production; no
            # worker runs during the load, so processing does not compete with intake.
            OPENLINE_TASKS_BACKEND="django_tasks_db.DatabaseBackend",
        )
        connector = _script(env, SETUP, SECRET, TOKEN)["connector"]
        port = bench_port()
        # Two web workers under uvicorn's own supervisor, as `manage.py serve --workers 2`.
        server = subprocess.Popen(uvicorn_command(port=port, workers=2), cwd=ROOT, env=env)
        try:
            wait_healthy(port)
            rng = random.Random(9)
            count = 3_000 if args.quick else 20_000
            warm, _ = _requests(port, 300, 10_000_000, rng)
            run_load(host="127.0.0.1", port=port, requests=warm, concurrency=CONCURRENCY)
            requests, ids = _requests(port, count, 1, rng)
            load = run_load(host="127.0.0.1", port=port, requests=requests, concurrency=CONCURRENCY)
            # The same server answering its no-op /healthz: the stack's own ceiling.
            noop = build_request(
                host="127.0.0.1", port=port, path="/healthz", body=b"", headers={}, method="GET"
            )
            health = run_load(
                host="127.0.0.1", port=port, requests=[noop] * count, concurrency=CONCURRENCY
            )
        finally:
            stop_process(server)
        rows, distinct = _stored(url, connector, ids)
        ceiling = raw_insert_ceiling(url, 3.0 if args.quick else 6.0)
        processed = _script(env, PROCESS, str(connector))
    ok_once = rows == distinct == len(ids) and load.statuses.get(200, 0) == load.sent
    rate = load.rate
    raw = ("raw durable single-row INSERTs, 16 clients", ceiling, "rows/s")
    return [
        figure(
            "Telegram webhook ingestion (signed, 10% repeats, 16 senders)",
            rate,
            "updates/s",
            ceiling=raw,
            target=f">= {TARGET:.0f} updates/s, each stored exactly once",
            ok=rate >= TARGET and ok_once,
            digits=0,
        )
        | {
            "detail": f"{rows} rows for {len(ids)} distinct updates of {load.sent} deliveries"
            f" ({dict(load.statuses)}; {load.errors} connection errors)"
        },
        figure(
            "updates stored exactly once (rows for distinct updates)",
            rows,
            "rows",
            ceiling=("distinct updates sent", len(ids), "updates"),
            target="rows = distinct updates, every delivery answered 200",
            ok=ok_once,
            digits=0,
        ),
        figure(
            "ingestion latency p50",
            load.percentile(50) * 1000,
            "ms",
        ),
        figure("ingestion latency p99", load.percentile(99) * 1000, "ms"),
        figure(
            "same server's no-op /healthz (same run)",
            health.rate,
            "requests/s",
            digits=0,
        ),
        figure(
            "Telegram webhook ingestion vs the same server's no-op /healthz",
            rate,
            "updates/s",
            ceiling=("no-op /healthz, same server, 16 connections", health.rate, "requests/s"),
            digits=0,
        ),
        figure(
            "processing the backlog (visitor, CRM item, conversation, message, warning)",
            processed["done"] / processed["seconds"] if processed["seconds"] else 0,
            "events/s",
            digits=0,
        )
        | {"detail": f"{processed['done']} done in {processed['seconds']:.1f} s, one process"},
    ]
