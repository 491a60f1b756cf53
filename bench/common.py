"""Shared plumbing of the PostgreSQL benchmarks: database URLs, environments, servers, figures.

Every benchmark that needs PostgreSQL uses its own database on the server named by
``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/``): the host, port and
credentials come from that URL, the database name is the benchmark's own (created if missing,
migrated on every run, so a cached database follows the schema).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/"


def database_url(name: str) -> str:
    """Return the URL of the benchmark database ``name`` on the benchmark server."""
    base = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_SERVER
    if not base.startswith(("postgres://", "postgresql://")):
        raise RuntimeError(f"BENCH_DATABASE_URL must be a PostgreSQL URL, not {base!r}")
    server, _, _ = base.partition("?")
    return server.rsplit("/", 1)[0] + "/" + name


def server_env(url: str, **extra: str) -> dict:
    """Return the environment of an Openline process on ``url``: DEBUG off, no Redis, quiet."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        OPENLINE_DEBUG="false",
        OPENLINE_LOG_LEVEL="WARNING",
        OPENLINE_TASKS_BACKEND="django_tasks.backends.dummy.DummyBackend",
        OPENLINE_ALLOWED_HOSTS="127.0.0.1,localhost",
        OPENLINE_SECRET_KEY="bench-secret-key-" + "x" * 40,
        DJANGO_SETTINGS_MODULE="openline.settings",
    )
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


def manage(url: str, *args: str) -> str:
    """Run ``manage.py`` on the benchmark database; return its standard output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=server_env(url),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def create_database(url: str) -> bool:
    """Create the database of ``url`` if it is missing; return whether it was created."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def drop_database(url: str) -> None:
    """Drop the database of ``url`` (a benchmark's own), closing its sessions."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    if not name.startswith("bench_"):
        raise RuntimeError(f"refusing to drop {name!r}: benchmark databases start with bench_")
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ensure_database(url: str) -> None:
    """Create the benchmark database if needed and migrate it."""
    create_database(url)
    manage(url, "migrate", "--no-input")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Return ``VmRSS`` (or ``VmHWM``) of a process in bytes, 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def wait_healthy(port: int, timeout: float = 120.0) -> None:
    # Generous: importing the app takes ~10 s per worker on 2 busy shared cores.
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} did not become healthy")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def figure(
    name: str,
    value: float,
    unit: str,
    *,
    ceiling: tuple[str, float, str] | None = None,
    target: str | None = None,
    ok: bool | None = None,
    digits: int = 1,
) -> dict:
    """Build one result dict of contract B; ``ratio`` is value / ceiling value."""
    result: dict = {"name": name, "value": round(value, digits), "unit": unit}
    if ceiling is not None:
        c_name, c_value, c_unit = ceiling
        result["ceiling"] = {"name": c_name, "value": round(c_value, digits), "unit": c_unit}
        result["ratio"] = round(value / c_value, 4) if c_value else None
    if target is not None:
        result["target"] = target
    if ok is not None:
        result["ok"] = bool(ok)
    return result


# Ports of the registry benchmarks (list, export, consent writes, ingestion).
PORTS = range(18700, 18800)


def bench_port() -> int:
    """Return a free port in the registry benchmarks' range (18700-18799)."""
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18700-18799")


def uvicorn_command(
    app: str = "openline.asgi:application", *, port: int, workers: int = 1, factory: bool = False
) -> list[str]:
    """Return uvicorn's command line as ``manage.py serve`` runs it, on 127.0.0.1:``port``, quiet."""
    args = [
        *(sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", str(workers), "--no-proxy-headers", "--no-server-header"),
        # Chat frames are tiny; permessage-deflate would cost ~50 KB of zlib state per socket.
        *("--ws-per-message-deflate", "false"),
        # As manage.py serve: a busy worker is not killed by uvicorn's health check.
        *("--timeout-worker-healthcheck", "30"),
        *("--lifespan", "off", "--log-level", "warning", "--no-access-log", "--backlog", "4096"),
    ]
    if factory:
        args.append("--factory")
    return args


def start_openline(
    url: str, port: int, *, workers: int = 1, env: dict | None = None
) -> subprocess.Popen:
    """Start the web server as ``manage.py serve`` runs it (uvicorn, DEBUG off) on ``port``."""
    process = subprocess.Popen(
        uvicorn_command(port=port, workers=workers), cwd=ROOT, env=env or server_env(url)
    )
    try:
        wait_healthy(port)
    except RuntimeError:
        stop_process(process)
        raise
    return process


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_direct_sql(url: str, request: dict, timeout: float = 900) -> dict:
    """Run ``bench.direct_sql`` on the benchmark database; return its JSON answer."""
    import json

    env = server_env(url)
    env["OPENLINE_ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    result = subprocess.run(
        [sys.executable, "-m", "bench.direct_sql"],
        cwd=ROOT,
        env=env,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for line in result.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise RuntimeError(
        f"bench.direct_sql failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )


def raw_insert_rate(
    url: str, *, table_sql: str, insert_sql: str, params, clients: int, seconds: float
) -> float:
    """Durable single-row INSERTs/s from ``clients`` autocommit psycopg connections.

    ``table_sql`` creates the scratch table ``bench_raw`` (dropped before and after);
    ``params(client, i)`` returns the parameters of the ``i``-th INSERT of a client.
    """
    import threading

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw")
        conn.execute(table_sql)
    counts = [0] * clients
    deadline = time.perf_counter() + seconds

    def writer(n: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            i = 0
            while time.perf_counter() < deadline:
                conn.execute(insert_sql, params(n, i))
                i += 1
            counts[n] = i

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_raw")
    return sum(counts) / elapsed
