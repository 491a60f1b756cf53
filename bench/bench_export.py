"""CSV export of about 1,000,000 Obtained consents over real HTTP, next to PostgreSQL's own COPY.

Data: the cached 10,000,000-record registry of ``bench.registry_seed`` (``--quick``: 200,000
records, all exported). The export covers the newest records (a date range from the console's
filter that holds about a million of them), as an administrator downloads it.

Server: one uvicorn worker as ``manage.py serve`` runs it (DEBUG off), port 18700-18799. Cores:
the server forwards the CSV that PostgreSQL writes (one COPY per keyset chunk), the client only
counts lines (httpx, one stream), PostgreSQL formats the rows: three processes on 2 shared cores,
the same three as in the ceiling (PostgreSQL, one Python reader), so the ratio compares like with
like without pinning.

* **rows/s**: rows received by the client per second; ceiling: ``COPY (the same SELECT over the
  whole range, no chunks) TO STDOUT`` read by psycopg in the same run. Target >= 50,000 rows/s.
* **server memory**: the server's peak RSS growth while it streams (sampled every 50 ms); ceiling:
  the COPY reader's own peak RSS growth. Target < 100 MB.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from bench.common import (
    bench_port,
    figure,
    rss_bytes,
    run_direct_sql,
    start_openline,
    stop_process,
)
from bench.registry_seed import SPAN_DAYS, ensure_registry

EXPORT_ROWS = 1_000_000
TARGET_RATE = 50_000
TARGET_MB = 100


def export_query(rows: int, total: int, ended: dt.datetime) -> str:
    """A console filter holding about ``rows`` of the newest records (spread evenly over a year)."""
    if rows >= total:
        return "format=csv"
    days = SPAN_DAYS * rows / total
    since = (ended - dt.timedelta(days=days)).date()
    return f"period=custom&date_from={since.isoformat()}&format=csv"


def stream(client, url: str, pid: int) -> tuple[int, float, float]:
    """Download ``url``; return rows, seconds and the server's peak RSS growth in MB."""
    peak = {"rss": 0}
    baseline = rss_bytes(pid)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["rss"] = max(peak["rss"], rss_bytes(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = 0
    started = time.perf_counter()
    with client.stream("GET", url, timeout=600) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            lines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return lines - 1, seconds, max(0, peak["rss"] - baseline) / 1e6  # minus the header


def run(args) -> list[dict]:
    import httpx

    registry = ensure_registry(args.quick, log=lambda text: print(text, flush=True))
    query = export_query(EXPORT_ROWS, registry.rows, registry.ended)
    port = bench_port()
    server = start_openline(registry.url, port)
    try:
        with httpx.Client(cookies={"sessionid": registry.setup["session"]}, timeout=60) as client:
            url = f"http://127.0.0.1:{port}/console/obtained-consents/export/?{query}"
            # Warm the worker (imports, connection) with a small export first.
            small = (
                f"http://127.0.0.1:{port}/console/obtained-consents/export/?period=today&format=csv"
            )
            stream(client, small, server.pid)
            rows, seconds, growth = stream(client, url, server.pid)
    finally:
        stop_process(server)
    copy = run_direct_sql(
        registry.url, {"mode": "export", "query": query.replace("&format=csv", "")}
    )
    rate = rows / seconds
    return [
        figure(
            f"CSV export over HTTP ({rows:,} rows)",
            rate,
            "rows/s",
            ceiling=(
                f"COPY (same SELECT) TO STDOUT via psycopg ({copy['rows']:,} rows)",
                copy["rows_per_s"],
                "rows/s",
            ),
            target=f">= {TARGET_RATE:,} rows/s",
            ok=rate >= TARGET_RATE and abs(rows - copy["rows"]) <= 1,
            digits=0,
        ),
        figure(
            "CSV export: server peak memory growth",
            growth,
            "MB",
            ceiling=("COPY reader's peak memory growth", copy["memory_growth_mb"], "MB"),
            target=f"< {TARGET_MB} MB",
            ok=growth < TARGET_MB,
            digits=2,
        ),
    ]
