"""Crash drill: kill -9 a web worker in the middle of a burst of consent captures.

A private PostgreSQL and Redis, Openline under uvicorn with 2 web workers (DEBUG off) and a
task worker (the sealer). 16 concurrent clients post accepted live chat starts (consent record +
visitor + conversation + first message), each with its own ``Idempotency-Key``; one web worker
is killed with SIGKILL a third of the way through (uvicorn's supervisor starts a new one).

Checked afterwards, in the database:

* every start answered 201 is in the registry: its record uuid, with the visitor, conversation
  and message the answer named;
* nothing is half-written: every visitor of the channel has its conversation, consent record
  and first message, every record its visitor's conversation, no conversation holds two first
  messages;
* each start whose answer was lost (connection reset by the kill) was stored at most once;
* the widget's retry of each lost start with the same key (contract A) creates no second
  visitor, conversation or record and answers with the stored record; a sample of answered
  starts sent again is replayed (``Idempotent-Replayed: true``) with the same record; new
  starts sent twice at once with one key (two connections) are captured once, and both
  answers name that record;
* the webhook outbox (written in the capture's transaction) holds exactly one
  ``consent.given`` event per record and one ``conversation.started`` per conversation;
* after the sealer (the task worker) ran, every record is sealed and ``consent_verify`` passes.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from drills.harness import (
    DrillFailure,
    LiveChatSeed,
    OpenlineServer,
    OpenlineWorker,
    PrivatePostgres,
    PrivateRedis,
    drill_env,
    free_port,
    manage,
    run_script,
    seed_livechat_channel,
    start_body,
    widget_start_async,
)
from drills.registry_checks import (
    LOST,
    RETRY_STATUSES,
    Attempt,
    acknowledged_stored,
    half_written,
    record_of_client,
    snapshot,
    stored_client_ids,
    wait_sealed,
)

CLIENTS = 16

ENDPOINT = r"""
from openline.webhooks.services import create_endpoint
endpoint, _secret = create_endpoint(
    actor=None, url=sys.argv[1], events=["consent.given", "conversation.started"])
print("RESULT" + json.dumps({"endpoint": endpoint.pk}))
"""


class _Sink:
    """A webhook receiver on loopback that answers 204 to everything (and counts)."""

    def __init__(self, port: int):
        outer = self
        self.count = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.count += 1
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _attempts(seed: LiveChatSeed, count: int, run: str) -> list[Attempt]:
    attempts = []
    for i in range(count):
        body = start_body(seed, text=f"Drill {run} capture {i}: where is my order?", client_id="")
        body["client_id"] = f"drill-{run}-{i}"
        attempts.append(Attempt(i, f"drill-{run}-{i}-{secrets.token_hex(8)}", body))
    return attempts


async def _send(client: httpx.AsyncClient, url: str, seed: LiveChatSeed, a: Attempt) -> None:
    try:
        response = await widget_start_async(client, url, seed, a.body, idempotency_key=a.key)
    except LOST as exc:
        a.error = f"{type(exc).__name__}"
        return
    a.status = response.status_code
    a.replayed = response.headers.get("Idempotent-Replayed") == "true"
    if response.status_code in RETRY_STATUSES:
        a.error = f"HTTP {response.status_code}"
        return
    try:
        a.answer = response.json()
    except ValueError:
        a.error = f"HTTP {response.status_code}, not JSON"


async def _burst(
    server: OpenlineServer, seed: LiveChatSeed, attempts: list[Attempt], kill_after: int
) -> dict:
    """Send every attempt from CLIENTS concurrent clients; kill -9 a web worker mid-way."""
    queue: asyncio.Queue[Attempt] = asyncio.Queue()
    for a in attempts:
        queue.put_nowait(a)
    done = 0
    killed: dict = {}
    started = time.monotonic()

    async def client_loop() -> None:
        nonlocal done
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            while not queue.empty():
                a = queue.get_nowait()
                await _send(client, server.url, seed, a)
                done += 1
                if done >= kill_after and not killed:
                    killed["connections"] = server.connections()
                    killed["pid"] = server.kill_worker()
                    killed["at"] = done

    await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))
    killed["seconds"] = time.monotonic() - started
    return killed


async def _retry(server: OpenlineServer, seed: LiveChatSeed, attempts: list[Attempt]) -> None:
    """Retry like the widget: the same key and body, jittered back-off, until answered."""
    rng = random.Random(7)
    async with httpx.AsyncClient(timeout=30) as client:
        for a in attempts:
            for n in range(6):
                try:
                    r = await widget_start_async(
                        client, server.url, seed, a.body, idempotency_key=a.key
                    )
                except LOST:
                    a.retries.append((None, None, False))
                else:
                    replayed = r.headers.get("Idempotent-Replayed") == "true"
                    body = (
                        r.json()
                        if r.headers.get("content-type", "").startswith("application/json")
                        else None
                    )
                    a.retries.append((r.status_code, body, replayed))
                    if r.status_code not in RETRY_STATUSES:
                        break
                await asyncio.sleep(min(2.0, 0.1 * 2**n) * (0.5 + rng.random()))


async def _twins(server: OpenlineServer, seed: LiveChatSeed, attempts: list[Attempt]) -> None:
    """Send each start twice at once with one key, on two connections (two workers, likely)."""

    async def once(client: httpx.AsyncClient, a: Attempt) -> None:
        try:
            r = await widget_start_async(client, server.url, seed, a.body, idempotency_key=a.key)
        except LOST:
            a.retries.append((None, None, False))
            return
        replayed = r.headers.get("Idempotent-Replayed") == "true"
        json_body = r.headers.get("content-type", "").startswith("application/json")
        a.retries.append((r.status_code, r.json() if json_body else None, replayed))

    async with httpx.AsyncClient(timeout=30) as one, httpx.AsyncClient(timeout=30) as two:
        for a in attempts:
            await asyncio.gather(once(one, a), once(two, a))


# snapshot, half_written, acknowledged_stored, stored_client_ids and wait_sealed are
# used by the outage drills too: keep their signatures.


def run(args) -> list[dict]:
    count = 300 if args.quick else 800
    run_id = uuid.uuid4().hex[:6]
    pg = PrivatePostgres(free_port(18530, 18539)).start()
    redis = PrivateRedis(free_port(18570, 18579)).start()
    env = drill_env(pg.create_database("openline"), redis.url)
    seed = seed_livechat_channel(env, name="Crash drill site")
    sink = _Sink(free_port(18590, 18599))
    run_script(env, ENDPOINT, sink.url)
    server = OpenlineServer(env, free_port(18580, 18589), workers=2).start()
    sealer = OpenlineWorker(env, "db_worker").start()
    attempts = _attempts(seed, count, run_id)
    killed = asyncio.run(_burst(server, seed, attempts, kill_after=count // 3))
    server.wait_workers(2, timeout=60)  # the supervisor replaced the killed worker

    acknowledged = [a for a in attempts if a.status == 201]
    refused = [a for a in attempts if a.status is not None and a.status != 201 and not a.error]
    lost = [a for a in attempts if a.error]
    before = snapshot(pg, seed.channel_id)
    stored_ids = stored_client_ids(before)
    lost_stored = [a for a in lost if stored_ids.get(a.client_id)]
    half = half_written(before)
    missing = acknowledged_stored(before, acknowledged)
    doubled = {c: n for c, n in stored_ids.items() if n > 1}
    crash_ok = not half and not missing and not doubled and not refused and bool(acknowledged)
    results = [
        {
            "name": "crash: web worker kill -9 during a capture burst",
            "ok": crash_ok,
            "detail": (
                f"{len(attempts)} starts from {CLIENTS} clients, worker {killed.get('pid')} killed"
                f" after {killed.get('at')} (connections per worker {killed.get('connections')}):"
                f" {len(acknowledged)} acknowledged (all stored:"
                f" {not missing}), {len(lost)} lost their answer of which {len(lost_stored)}"
                f" stored, {len(refused)} refused, {len(half)} half-written"
                + (f"; {missing[:3]}" if missing else "")
                + (f"; {half[:3]}" if half else "")
                + (f"; refused: {[(a.status, a.answer) for a in refused[:2]]}" if refused else "")
            ),
            "sent": len(attempts),
            "acknowledged": len(acknowledged),
            "stored": len(before["records"]),
            "lost_answer": len(lost),
            "lost_answer_but_stored": len(lost_stored),
            "half_written": len(half),
            "burst_seconds": round(killed["seconds"], 1),
        }
    ]

    # The widget retries each start whose answer was lost, with the same key; a sample of
    # answered starts is sent again too (a retry racing a slow answer).
    sample = acknowledged[:: max(1, len(acknowledged) // 20)][:20]
    asyncio.run(_retry(server, seed, lost + sample))
    # Two requests with one key at the same moment (a double click, a retry racing the
    # first answer): one capture, and both answers name it.
    twins = _attempts(seed, 8, run_id + "t")
    asyncio.run(_twins(server, seed, twins))
    after = snapshot(pg, seed.channel_id)
    stored_after = stored_client_ids(after)
    problems = half_written(after)
    for a in lost + sample:
        status, body, replayed = a.retries[-1] if a.retries else (None, None, False)
        record = record_of_client(after, a.client_id)
        if stored_after.get(a.client_id) != 1:
            problems.append(f"#{a.index}: stored {stored_after.get(a.client_id, 0)} times")
        elif status != 201 or not body:
            problems.append(f"#{a.index}: the retry answered {status} {body}")
        elif body.get("record") != record:
            problems.append(
                f"#{a.index}: the retry names record {body.get('record')}, not {record}"
            )
        elif (a in sample or a in lost_stored) and not replayed:
            problems.append(f"#{a.index}: stored before, but the retry was not a replay")
    for a in twins:
        answers = [(status, (body or {}).get("record")) for status, body, _r in a.retries]
        record = record_of_client(after, a.client_id)
        if stored_after.get(a.client_id) != 1:
            problems.append(f"twin #{a.index}: stored {stored_after.get(a.client_id, 0)} times")
        elif answers != [(201, record)] * 2:
            problems.append(f"twin #{a.index}: answered {answers}, stored record {record}")
    new_rows = len(after["records"]) - len(before["records"])
    expected_new = len(lost) - len(lost_stored) + len(twins)
    if new_rows != expected_new:
        problems.append(f"{new_rows} new records after the retries, expected {expected_new}")
    results.append(
        {
            "name": "crash: lost starts retried with the same Idempotency-Key",
            "ok": not problems,
            "detail": (
                f"{len(lost)} lost + {len(sample)} answered starts retried,"
                f" {len(twins)} new starts sent twice at once:"
                f" {len(after['visitors']) - len(before['visitors'])} new visitors,"
                f" {new_rows} new records (expected {expected_new}: the lost ones never stored"
                " and the twins)"
                + (f"; {len(problems)} problems: {problems[:3]}" if problems else "; none doubled")
            ),
            "retried": len(lost) + len(sample),
            "new_records": new_rows,
        }
    )

    # The webhook outbox is written in the capture's transaction: one event per record and
    # per conversation, whatever was killed or retried.
    given = pg.sql(
        "SELECT payload->'data'->>'record_id' FROM webhooks_webhookevent"
        " WHERE type = 'consent.given'",
        "openline",
    )
    started = pg.sql(
        "SELECT (payload->'data'->>'conversation_id')::int FROM webhooks_webhookevent"
        " WHERE type = 'conversation.started'",
        "openline",
    )
    events_ok = sorted(r[0] for r in given) == sorted(after["records"]) and sorted(
        r[0] for r in started
    ) == sorted(after["conversations"])
    results.append(
        {
            "name": "crash: one webhook event per capture",
            "ok": events_ok,
            "detail": (
                f"{len(given)} consent.given events for {len(after['records'])} records,"
                f" {len(started)} conversation.started for {len(after['conversations'])}"
                f" conversations ({'one each' if events_ok else 'MISMATCH'});"
                f" {sink.count} deliveries received so far"
            ),
        }
    )
    sink.stop()

    records, gap = wait_sealed(pg)
    sealer.stop()
    try:
        verify = manage(env, "consent_verify", "--all", timeout=120)
        verified, verify_detail = True, verify.strip().splitlines()[-1] if verify.strip() else ""
    except DrillFailure as exc:
        verified, verify_detail = False, str(exc)[-500:]
    server.stop()
    results.append(
        {
            "name": "crash: registry sealed by the worker, consent_verify passes",
            "ok": verified and gap >= 0,
            "detail": (
                f"{records} records, {'all sealed' if gap >= 0 else f'{-gap} ids not sealed'};"
                f" consent_verify: {verify_detail}"
            ),
            "records": records,
        }
    )
    return results
