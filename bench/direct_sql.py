"""Ceilings of the registry pages: the same SQL the server runs, run directly with psycopg.

Run as a subprocess on the benchmark database (``DATABASE_URL`` set), with a JSON request on
standard input and a JSON answer (a line starting with ``RESULT``) on standard output:

* ``{"mode": "pages", "session": key, "paths": [...], "repeat": n}``: each page is fetched once
  through Django's test client with the session cookie while every SQL statement it issues is
  captured (the literal statements Django sends: its psycopg backend binds on the client side);
  then the same statements are run in order on a plain psycopg connection ``repeat`` times, and
  the p95 of their total time is reported, with the plan of the slowest statement as Django's
  connection and psycopg each see it (``same_plan``).
* ``{"mode": "export", "query": querystring}``: the console export's CSV SELECT over the whole
  filtered range (no keyset chunks) is streamed with ``COPY (...) TO STDOUT`` by psycopg;
  rows/s, bytes and this process's peak memory growth are reported.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time


def _plan_shape(plan) -> str:
    """Summarise a JSON plan as its node types and indexes, outermost first."""
    parts: list[str] = []

    def walk(node) -> None:
        label = node["Node Type"]
        if node.get("Index Name"):
            label += f" using {node['Index Name']}"
        parts.append(label)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return " > ".join(parts)


def _timed_run(conn, statements: list[str]) -> float:
    started = time.perf_counter()
    for sql in statements:
        cursor = conn.execute(sql)
        if cursor.description is not None:
            cursor.fetchall()
    return (time.perf_counter() - started) * 1000


def pages(request: dict) -> dict:
    import psycopg
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.cookies["sessionid"] = request["session"]
    url = os.environ["DATABASE_URL"]
    answers = []
    with psycopg.connect(url, autocommit=True) as conn:
        for path in request["paths"]:
            client.get(path)  # warm: the same caches as the running server
            with CaptureQueriesContext(connection) as captured:
                response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}")
            statements = [q["sql"] for q in captured.captured_queries]
            # Session and user lookups are writes-free; a session save would be an UPDATE.
            statements = [s for s in statements if not s.lstrip().upper().startswith("UPDATE")]
            for _ in range(3):
                _timed_run(conn, statements)
            samples = sorted(_timed_run(conn, statements) for _ in range(request["repeat"]))
            p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
            # The page's own EXPLAIN (the count estimate) cannot be explained again.
            plannable = [s for s in statements if not s.lstrip().upper().startswith("EXPLAIN")]
            slowest = max(plannable, key=lambda s: _timed_run(conn, [s]))
            explain = "EXPLAIN (FORMAT JSON) " + slowest
            with connection.cursor() as cursor:
                cursor.execute(explain)
                django_plan = cursor.fetchone()[0]
            django_plan = json.loads(django_plan) if isinstance(django_plan, str) else django_plan
            direct_plan = conn.execute(explain).fetchone()[0]
            answers.append(
                {
                    "path": path,
                    "statements": len(statements),
                    "direct_p95_ms": p95,
                    "plan": _plan_shape(direct_plan),
                    "same_plan": _plan_shape(django_plan) == _plan_shape(direct_plan),
                }
            )
    return {"pages": answers}


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def export(request: dict) -> dict:
    import psycopg
    from django.http import QueryDict

    from openline.consent.export import _PG_CSV_SQL
    from openline.consent.selectors import filtered_records, parse_filter

    form, flt = parse_filter(QueryDict(request["query"]))
    if form.errors:
        raise RuntimeError(f"bad filter: {form.errors}")
    inner, params = filtered_records(flt).values("id").query.sql_with_params()
    sql = _PG_CSV_SQL.replace("SELECT r.id, ", "SELECT ", 1).format(inner=inner)
    url = os.environ["DATABASE_URL"]
    peak = {"rss": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["rss"] = max(peak["rss"], _rss())
            time.sleep(0.05)

    with psycopg.connect(url, autocommit=True) as conn:
        query = psycopg.ClientCursor(conn).mogrify(sql, params)
        baseline = _rss()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rows = size = 0
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy,
        ):
            for data in copy:
                rows += bytes(data).count(b"\n")
                size += len(data)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return {
        "rows": rows,
        "bytes": size,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "memory_growth_mb": max(0, peak["rss"] - baseline) / 1e6,
    }


def main() -> None:
    import django

    django.setup()
    request = json.loads(sys.stdin.read())
    answer = pages(request) if request["mode"] == "pages" else export(request)
    print("RESULT" + json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
