"""Obtained consents at 10,000,000 records: page p95 over real HTTP next to the same SQL run directly.

Data: the cached registry of ``bench.registry_seed`` (``bench_registry_10m``; ``--quick``: 200,000
records), seeded once and reused while its fingerprint holds.

Server: one uvicorn worker serving Openline as ``manage.py serve`` does (DEBUG off), on a port in
18700-18799, logged in as an administrator. The client sends one request at a time (httpx), so
server, client and PostgreSQL never compete for the 2 cores: each request has the server's core
and PostgreSQL's to itself; no pinning is needed for a sequential latency figure.

Figures, for "one consent + a 7-day range" (the last seeded week, so the figure does not drift
as the seed ages) and for the unfiltered list, each for the first page and for the page reached
after following the "next" cursor 50 times:

* **measured**: p95 of the whole page over HTTP (routing, session, SQL, template);
* **ceiling**: p95 of the same SQL statements the page issues (captured from Django, literal
  SQL, so the same plan: the slowest statement's plan is compared on both connections), run
  directly in order on one psycopg connection;
* **ratio**: how many times the ceiling the page takes. Target: p95 < 50 ms.
"""

from __future__ import annotations

import datetime as dt
import re
import time

from bench.common import (
    bench_port,
    figure,
    percentile,
    run_direct_sql,
    start_openline,
    stop_process,
)
from bench.registry_seed import Registry, ensure_registry

CURSOR = re.compile(r'rel="next" href="\?[^"]*cursor=([A-Za-z0-9_-]+)"')
TARGET_MS = 50.0
HOPS = 50


def filters(registry: Registry) -> list[tuple[str, str]]:
    """Return the measured filters: one consent over the seed's last week, and none."""
    consent = registry.setup["agreements"][0]["id"]
    last = registry.ended.date()
    first = last - dt.timedelta(days=6)
    return [
        (
            "one consent + 7 days",
            f"consent={consent}&period=custom&date_from={first.isoformat()}&date_to={last.isoformat()}",
        ),
        ("unfiltered", ""),
    ]


def _timed(client, url: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response.text


def walk(client, base: str, query: str) -> tuple[str, str, int]:
    """Return the first page's path, the path after HOPS cursor hops, and the hops made."""
    first = f"/console/obtained-consents/?{query}"
    path = first
    hops = 0
    for _ in range(HOPS):
        _, body = _timed(client, base + path)
        match = CURSOR.search(body)
        if not match:
            break
        path = f"{first}{'&' if query else ''}cursor={match.group(1)}"
        hops += 1
    return first, path, hops


def page_p95(client, url: str, repeat: int) -> float:
    for _ in range(3):  # warm: templates, connection, planner statistics
        _timed(client, url)
    return percentile([_timed(client, url)[0] for _ in range(repeat)], 95)


def run(args) -> list[dict]:
    import httpx

    registry = ensure_registry(args.quick, log=lambda text: print(text, flush=True))
    repeat = 20 if args.quick else 50
    port = bench_port()
    base = f"http://127.0.0.1:{port}"
    server = start_openline(registry.url, port)
    measured: list[tuple[str, str, float, int]] = []
    try:
        with httpx.Client(cookies={"sessionid": registry.setup["session"]}, timeout=60) as client:
            for label, query in filters(registry):
                first, deep, hops = walk(client, base, query)
                measured.append(
                    (f"{label}: first page", first, page_p95(client, base + first, repeat), hops)
                )
                measured.append(
                    (
                        f"{label}: page after {hops} hops",
                        deep,
                        page_p95(client, base + deep, repeat),
                        hops,
                    )
                )
    finally:
        stop_process(server)
    direct = run_direct_sql(
        registry.url,
        {
            "mode": "pages",
            "session": registry.setup["session"],
            "paths": [path for _, path, _, _ in measured],
            "repeat": repeat,
        },
    )["pages"]
    results = []
    for (label, _, p95, hops), sql in zip(measured, direct, strict=True):
        ok = p95 < TARGET_MS and sql["same_plan"] and (hops == HOPS or args.quick)
        row = figure(
            f"Obtained consents at {registry.rows:,}, {label}: p95",
            p95,
            "ms",
            ceiling=(
                f"same {sql['statements']} SQL statements via psycopg, p95",
                sql["direct_p95_ms"],
                "ms",
            ),
            target=f"< {TARGET_MS:.0f} ms",
            ok=ok,
            digits=2,
        )
        row["detail"] = f"plan: {sql['plan']}; same plan on both connections: {sql['same_plan']}"
        results.append(row)
    seed = (
        f"reused (first seed took {registry.first_seed_seconds:.0f} s)"
        if registry.reused
        else f"seeded in {registry.seed_seconds:.0f} s"
    )
    results.append(
        {
            "name": f"registry seed ({registry.url.rsplit('/', 1)[1]})",
            "value": registry.rows,
            "unit": "records",
            "detail": seed,
        }
    )
    return results
