"""Database outage drill: stop PostgreSQL under load, start it again, restart nothing else.

A private PostgreSQL and Redis, Openline under uvicorn with 2 web workers (DEBUG off) and a task
worker (the sealer). 8 clients post accepted widget starts and load the widget page without
pause; ``/readyz`` is polled every 0.2 s. PostgreSQL is stopped (fast shutdown) for a few
seconds, then started again. Openline is never restarted.

Checked:

* during the outage every answer is a 503 with ``Retry-After`` and the ``unavailable`` body,
  never a 500 or a hang: the time from the stop to the first 503 and the slowest answer to a
  request sent during the outage are reported (contract D: ≤ 2 s);
* ``/readyz`` answers 503 during the outage and 200 again after it;
* after the start, starts answer 201 again within seconds, without restarting Openline;
* every start answered 201 (before, during, after) is stored whole, nothing is half-written;
  the starts refused with 503, retried with the same ``Idempotency-Key`` as the widget does,
  are stored exactly once;
* the task worker (sealer) survived or is reported; after sealing, ``consent_verify`` passes.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from drills.harness import (
    DrillFailure,
    OpenlineServer,
    OpenlineWorker,
    PrivatePostgres,
    PrivateRedis,
    drill_env,
    free_port,
    manage,
    seed_livechat_channel,
    widget_start_async,
)
from drills.outage import OUTAGE_CODE, Load, ReadyPoller, first_after, rounded
from drills.registry_checks import (
    acknowledged_stored,
    half_written,
    snapshot,
    stored_client_ids,
    wait_sealed,
)

FAST = 2.0  # contract D: a 503 within 2 s of the failure being known


async def _drill(server: OpenlineServer, pg: PrivatePostgres, load: Load, seconds: dict) -> dict:
    stop = asyncio.Event()
    ready = ReadyPoller(server.url)
    runners = [
        asyncio.create_task(load.run_until(stop)),
        asyncio.create_task(ready.run_until(stop)),
    ]
    marks: dict = {}
    await asyncio.sleep(seconds["before"])
    marks["stopped"] = time.monotonic()
    await asyncio.to_thread(pg.stop)
    marks["down"] = time.monotonic()  # the postmaster has exited
    await asyncio.sleep(seconds["outage"])
    marks["starting"] = time.monotonic()
    await asyncio.to_thread(pg.start)
    marks["started"] = time.monotonic()
    await asyncio.sleep(seconds["after"])
    stop.set()
    await asyncio.gather(*runners)
    marks["ready"] = ready
    return marks


async def _retry_refused(server: OpenlineServer, load: Load) -> list:
    """The widget's retry of each start refused with 503, with the same key (8 at a time)."""
    refused = [a for a in load.attempts if a.status == 503 or (a.error and a.status is None)]
    gate = asyncio.Semaphore(8)

    async def retry(client: httpx.AsyncClient, a) -> None:
        async with gate:
            response = await widget_start_async(
                client, server.url, load.seed, a.body, idempotency_key=a.key
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        a.retries.append((response.status_code, body, False))

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(retry(client, a) for a in refused))
    return refused


def run(args) -> list[dict]:
    seconds = (
        {"before": 3, "outage": 5, "after": 5}
        if args.quick
        else {
            "before": 4,
            "outage": 10,
            "after": 8,
        }
    )
    pg = PrivatePostgres(free_port(18630, 18639)).start()
    redis = PrivateRedis(free_port(18670, 18679)).start()
    env = drill_env(pg.create_database("openline"), redis.url)
    seed = seed_livechat_channel(env, name="Database outage drill site")
    server = OpenlineServer(env, free_port(18600, 18609), workers=2).start()
    sealer = OpenlineWorker(env, "db_worker").start()
    load = Load(server.url, seed, uuid.uuid4().hex[:6])
    workers = sorted(server.pids())
    marks = asyncio.run(_drill(server, pg, load, seconds))
    ready: ReadyPoller = marks["ready"]
    down_from, up_from = marks["stopped"], marks["started"]

    during = [s for s in load.samples if down_from <= s.sent < marks["starting"]]
    wrong = [
        s
        for s in load.samples
        if s.status not in (200, 201, 503) or (s.status == 503 and s.code != OUTAGE_CODE)
    ]
    no_retry_after = [s for s in load.samples if s.status == 503 and not s.retry_after]
    first_503 = first_after(load.samples, down_from, 503)
    slowest = max((s.seconds for s in during), default=None)
    back_201 = first_after([s for s in load.samples if s.kind == "start"], marks["started"], 201)
    counts: dict = {}
    for s in load.samples:
        counts[s.status or s.error] = counts.get(s.status or s.error, 0) + 1
    ready_down = ready.first(503, down_from)
    ready_up = ready.first(200, up_from)
    outage_ok = (
        not wrong
        and not no_retry_after
        and first_503 is not None
        # Within FAST of the postmaster's exit (a fast shutdown itself takes a moment).
        and first_503 <= marks["down"] - down_from + FAST
        and slowest is not None
        and slowest <= FAST + 0.5
        and bool(during)
        and all(s.status == 503 for s in during if s.sent >= marks["down"] + FAST)
    )
    results = [
        {
            "name": "db outage: answers during the outage are fast 503s",
            "ok": outage_ok,
            "detail": (
                f"PostgreSQL stopped for {seconds['outage']} s under load ({load.clients} clients):"
                f" first 503 {rounded(first_503)} s after the stop began (PostgreSQL took"
                f" {rounded(marks['down'] - down_from)} s to shut down), slowest answer during it"
                f" {rounded(slowest)} s, {len(during)} requests during it; answers {counts}"
                + (f"; unexpected: {[(s.status, s.code) for s in wrong[:3]]}" if wrong else "")
                + (f"; {len(no_retry_after)} 503s without Retry-After" if no_retry_after else "")
            ),
            "first_503_s": rounded(first_503),
            "max_latency_during_s": rounded(slowest),
            "requests_during": len(during),
        },
        {
            "name": "db outage: /readyz follows, recovery without restart",
            "ok": ready_down is not None
            and ready_up is not None
            and back_201 is not None
            and back_201 < 10
            and sorted(server.pids()) == workers,
            "detail": (
                f"/readyz 503 {rounded(ready_down)} s after the stop, 200 {rounded(ready_up)} s"
                f" after the start; first 201 {rounded(back_201)} s after the start"
                f" (PostgreSQL took {rounded(marks['started'] - marks['starting'])} s to start);"
                f" web workers {server.pids()} never restarted"
            ),
            "readyz_503_after_s": rounded(ready_down),
            "readyz_200_after_s": rounded(ready_up),
            "first_201_after_start_s": rounded(back_201),
        },
    ]

    acknowledged = [a for a in load.attempts if a.status == 201]
    refused = asyncio.run(_retry_refused(server, load))
    snap = snapshot(pg, seed.channel_id)
    half = half_written(snap)
    missing = acknowledged_stored(snap, acknowledged)
    stored = stored_client_ids(snap)
    retried_bad = [
        a.index
        for a in refused
        if not a.retries or a.retries[-1][0] != 201 or stored.get(a.client_id) != 1
    ]
    doubled = {c: n for c, n in stored.items() if n > 1}
    sealer_survived = sealer.alive()
    if not sealer_survived:
        sealer = OpenlineWorker(env, "db_worker").start()
    records, gap = wait_sealed(pg)
    sealer.stop()
    try:
        verify = manage(env, "consent_verify", "--all", timeout=120)
        verified, verify_detail = True, verify.strip().splitlines()[-1] if verify.strip() else ""
    except DrillFailure as exc:
        verified, verify_detail = False, str(exc)[-400:]
    server.stop()
    results.append(
        {
            "name": "db outage: every 201 stored, nothing half-written, consent_verify passes",
            "ok": not half
            and not missing
            and not doubled
            and not retried_bad
            and verified
            and gap >= 0,
            "detail": (
                f"{len(acknowledged)} acknowledged, all stored: {not missing};"
                f" {len(half)} half-written; {len(refused)} refused starts retried with their"
                f" key: {len(refused) - len(retried_bad)} stored once; {records} records,"
                f" sealed: {gap >= 0}; task worker survived the outage: {sealer_survived}"
                f"; consent_verify: {verify_detail}"
                + (f"; {missing[:2]}" if missing else "")
                + (f"; {half[:2]}" if half else "")
                + (f"; doubled {list(doubled)[:3]}" if doubled else "")
            ),
            "acknowledged": len(acknowledged),
            "half_written": len(half),
            "worker_survived": sealer_survived,
        }
    )
    return results
