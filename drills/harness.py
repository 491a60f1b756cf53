"""Processes the failure drills start, kill and restart: private services and Openline itself.

Every drill runs against its **own** PostgreSQL cluster and Redis server (never the machine's
5432 / 6379, which others share), so it may kill them. Everything started here is registered
and torn down at exit (``atexit``) even when a drill fails; temp directories are removed.

API (stable; other drills build on it; the private services live in ``drills.services``):

``PrivatePostgres(port)``
    ``start()`` (initdb into a temp dir on first start, then ``postgres`` in its own session,
    as the ``postgres`` user when run as root), ``wait_ready(timeout)``, ``stop()`` (fast
    shutdown), ``kill(sig=SIGKILL)`` (the postmaster and all its backends),
    ``url(dbname="openline")``, ``create_database(name)``, ``sql(statement, dbname)``,
    ``pid``, ``cleanup()`` (stop and remove the data directory).
``PrivateRedis(port)``
    ``start()``, ``wait_ready(timeout)``, ``stop()``, ``kill(sig=SIGKILL)``, ``url`` (db 0),
    ``pid``, ``cleanup()``.
``drill_env(database_url, redis_url=None, var_dir=None, **extra) -> dict``
    The environment of every Openline process of a drill: DEBUG off, quiet logs, a fixed
    secret key, the database task backend, no demo site, start limits raised for bursts.
``migrate(env)``
    ``manage.py migrate`` once per database URL (later calls are no-ops); on PostgreSQL the
    migrated schema is cached per version of the code and loaded with psql next time.
``OpenlineServer(env, port, workers=2)``
    ``start()`` runs ``migrate(env)`` then uvicorn with ``openline.asgi:application`` and the
    options ``manage.py serve`` uses (DEBUG off), and waits for ``/healthz``; ``url``,
    ``pids()`` (the web worker processes), ``connections() -> {pid: open connections}``,
    ``kill_worker(sig=SIGKILL, pid=None) -> pid`` (default: the busiest worker),
    ``wait_workers(count, timeout)`` (uvicorn's supervisor replaces a dead worker), ``stop()``.
``OpenlineWorker(env, command="db_worker", args=())``
    ``manage.py db_worker`` (or ``messengers_run``, any command): ``start()``, ``pid``,
    ``kill(sig=SIGKILL)``, ``stop()``, ``alive()``.
``run_script(env, code, *args, timeout=120) -> dict``
    Run Python ``code`` with Django set up in a separate process; it prints one line
    ``RESULT<json>``, which is returned.
``seed_livechat_channel(env, name="Drill site") -> LiveChatSeed``
    A live chat Open Channel with consent on and an agreement version (via the services);
    the seed has ``code``, ``channel_id``, ``version``, ``language``, ``sha256``, ``agreement``.
``start_body(seed, text, client_id)`` / ``widget_start(client, base_url, seed, ...)``
    The body the widget posts to ``/widget/<code>/start`` with the consent accepted, and one
    start over HTTP (an ``httpx.Client`` or ``httpx.AsyncClient`` via ``widget_start_async``),
    optionally with an ``Idempotency-Key``.
``free_port(lo, hi)``, ``load_average()``, ``DrillFailure``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from drills.services import (
    PG_BINS,
    DrillFailure,
    PrivatePostgres,
    PrivateRedis,
    _forget,
    _register,
    _TempDir,
    _terminate,
    _wait,
    cleanup_all,
    free_port,
    load_average,
)

__all__ = [
    "DrillFailure",
    "LiveChatSeed",
    "OpenlineServer",
    "OpenlineWorker",
    "PrivatePostgres",
    "PrivateRedis",
    "cleanup_all",
    "drill_env",
    "free_port",
    "load_average",
    "manage",
    "migrate",
    "run_script",
    "seed_livechat_channel",
    "start_body",
    "widget_start",
    "widget_start_async",
]

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "drill-secret-key-" + "d" * 40
_MIGRATED: set[str] = set()


def drill_env(
    database_url: str, redis_url: str | None = None, var_dir: str | Path | None = None, **extra
) -> dict:
    """The environment of an Openline process in a drill (DEBUG off, fixed secret key)."""
    if var_dir is None:
        var_dir = tempfile.mkdtemp(prefix="openline-drill-var-")
        _register(_TempDir(Path(var_dir)))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPENLINE_") and k not in ("REDIS_URL", "DATABASE_URL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="openline.settings",
        DATABASE_URL=database_url,
        OPENLINE_VAR_DIR=str(var_dir),
        OPENLINE_DEBUG="false",
        OPENLINE_SECRET_KEY=SECRET_KEY,
        OPENLINE_ALLOWED_HOSTS="127.0.0.1,localhost",
        OPENLINE_LOG_LEVEL="ERROR",
        OPENLINE_DEMO_SITE="0",
        OPENLINE_TASKS_BACKEND="django_tasks_db.DatabaseBackend",
        # A burst from one loopback address is the point of a drill, not abuse.
        OPENLINE_LIVECHAT_RATE_START="100000/1",
        OPENLINE_LIVECHAT_RATE_IP="100000/1",
        PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


def manage(env: dict, *args: str, timeout: float = 300) -> str:
    """Run ``manage.py <args>``; return stdout, raise DrillFailure with stderr on failure."""
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise DrillFailure(
            f"manage.py {' '.join(args)} failed ({out.returncode}):\n"
            f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
        )
    return out.stdout


def _schema_cache() -> Path:
    """Where the schema of a migrated database is kept, named after the code that made it."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "openline").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    digest.update(str(PG_BINS[:1]).encode())
    return Path(tempfile.gettempdir()) / f"openline-drill-schema-{digest.hexdigest()[:20]}.sql"


def _pg_tool(name: str) -> str:
    if not PG_BINS:
        raise DrillFailure("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
    return str(PG_BINS[0] / name)


def migrate(env: dict) -> None:
    """``manage.py migrate`` once per database URL.

    On PostgreSQL the migrated database is dumped once per version of the code and later
    drills load that dump (a second instead of a minute of migrations on a busy machine).
    """
    url = env["DATABASE_URL"]
    if url in _MIGRATED:
        return
    cache = _schema_cache() if url.startswith("postgres") else None
    if cache is not None and cache.exists():
        out = subprocess.run(
            [_pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(cache), url],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise DrillFailure(f"loading the migrated schema failed: {out.stderr[-2000:]}")
    else:
        manage(env, "migrate", "--no-input")
        if cache is not None:
            partial = cache.with_suffix(".partial")
            out = subprocess.run(
                [_pg_tool("pg_dump"), "--no-owner", "--no-privileges", "-f", str(partial), url],
                capture_output=True,
                text=True,
            )
            if out.returncode == 0:
                for old in cache.parent.glob("openline-drill-schema-*.sql"):
                    old.unlink(missing_ok=True)
                partial.rename(cache)
    _MIGRATED.add(url)


def run_script(env: dict, code: str, *args: str, timeout: float = 120) -> dict:
    """Run ``code`` (Django set up first) in its own process; return its ``RESULT<json>`` line."""
    prelude = "import django, json, sys\ndjango.setup()\n"
    out = subprocess.run(
        [sys.executable, "-c", prelude + code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise DrillFailure(f"drill script failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class OpenlineServer:
    """Openline's ASGI app under uvicorn with ``workers`` web worker processes."""

    def __init__(self, env: dict, port: int, workers: int = 2):
        self.env = env
        self.port = port
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="openline-drill-web-", suffix=".log")[1])
        _register(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> OpenlineServer:
        """Migrate (once per database), start uvicorn and wait for /healthz and every worker."""
        migrate(self.env)
        # The same options as `manage.py serve` (which also starts a worker and the messengers
        # loop: drills start those themselves, to kill them separately).
        command = [
            *(sys.executable, "-m", "uvicorn", "openline.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--workers", str(self.workers), "--lifespan", "off"),
            *("--no-proxy-headers", "--no-server-header", "--no-access-log"),
            *("--ws-per-message-deflate", "false", "--log-level", "warning"),
            *("--timeout-graceful-shutdown", "5"),
        ]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),  # noqa: SIM115 - the child owns it
            start_new_session=True,
        )
        _wait(self._healthy, timeout, f"Openline on {self.port} (log {self.log})", self.proc)
        self.wait_workers(self.workers, timeout)
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def pids(self) -> list[int]:
        """The web worker processes (children of uvicorn's supervisor)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [p for p in _children(self.proc.pid) if "spawn_main" in _cmdline(p)]

    def wait_workers(self, count: int | None = None, timeout: float = 60) -> list[int]:
        """Wait until ``count`` workers run and /healthz answers; return their pids."""
        count = self.workers if count is None else count
        _wait(
            lambda: len(self.pids()) >= count and self._healthy(),
            timeout,
            f"{count} web workers on {self.port}",
            self.proc,
        )
        return self.pids()

    def connections(self) -> dict[int, int]:
        """Open client connections (TCP, established, on the server's port) per web worker."""
        established: set[str] = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == self.port:
                        established.add(fields[9])
        counts = {}
        for pid in self.pids():
            inodes = set()
            for fd in Path(f"/proc/{pid}/fd").glob("*"):
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
            counts[pid] = len(inodes & established)
        return counts

    def kill_worker(self, sig: int = signal.SIGKILL, pid: int | None = None) -> int:
        """Send ``sig`` (kill -9 by default) to one web worker; return its pid.

        Without ``pid``, the worker holding the most client connections (the one a kill hurts).
        """
        if pid is None:
            counts = self.connections()
            if not counts:
                raise DrillFailure("no web worker to kill")
            pid = max(counts, key=lambda p: counts[p])
        os.kill(pid, sig)
        return pid

    def stop(self) -> None:
        """Stop the supervisor and its workers (SIGTERM to the group, then SIGKILL)."""
        _terminate(self.proc, timeout=15)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self.log.unlink()
        _forget(self)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class OpenlineWorker:
    """A background ``manage.py`` process: ``db_worker`` (tasks) or ``messengers_run``."""

    def __init__(self, env: dict, command: str = "db_worker", args: tuple[str, ...] = ()):
        self.env = env
        self.command = command
        if command == "db_worker" and not args:
            args = ("--interval", "0.2", "--no-reload", "--no-startup-delay")
        self.args = tuple(args)
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix=f"openline-drill-{command}-", suffix=".log")[1])
        _register(self)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> OpenlineWorker:
        migrate(self.env)
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", self.command, *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.log, "ab"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise DrillFailure(
                f"manage.py {self.command} exited at once ({self.proc.returncode}): "
                f"{self.log_tail()}"
            )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the process group (the command and anything it started) with ``sig``."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        _terminate(self.proc, timeout=20)

    def cleanup(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self.log.unlink()
        _forget(self)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass(frozen=True)
class LiveChatSeed:
    code: str
    channel_id: int
    agreement: int
    version: int
    language: str
    sha256: str


SEED = r"""
from openline.consent.models import Agreement
from openline.consent.services import create_agreement
from openline.openchannels.models import OpenChannel
from openline.openchannels.policy import consent_offer
from openline.openchannels.services import create_open_channel

name = sys.argv[1]
agreement = Agreement.objects.filter(name=name + " notice").first() or create_agreement(
    actor=None, name=name + " notice", text="We keep your messages to answer you.",
    allow_html=False)
channel = OpenChannel.objects.filter(name=name).first() or create_open_channel(
    actor=None, name=name, connectors=["livechat"], consent_enabled=True, agreement=agreement)
shown = consent_offer(channel, "en")
print("RESULT" + json.dumps({"code": channel.code, "channel_id": channel.pk,
    "agreement": agreement.pk, "version": shown.version.id, "language": shown.language,
    "sha256": shown.sha256}))
"""


def seed_livechat_channel(env: dict, name: str = "Drill site") -> LiveChatSeed:
    """A live chat channel with consent on (created through the services; idempotent)."""
    migrate(env)
    return LiveChatSeed(**run_script(env, SEED, name))


def start_body(seed: LiveChatSeed, text: str = "Hello", client_id: str = "c1") -> dict:
    """What the widget posts to start a chat after the client accepted the consent."""
    return {
        "text": text,
        "client_id": client_id,
        "page_url": "https://shop.example/drill",
        "language": "en",
        "consent": {"version": seed.version, "language": seed.language, "sha256": seed.sha256},
    }


def _start_request(base_url: str, seed: LiveChatSeed, body: dict, key: str | None) -> dict:
    headers = {"Content-Type": "application/json", "User-Agent": "openline-drill/1"}
    if key:
        headers["Idempotency-Key"] = key
    return {"url": f"{base_url}/widget/{seed.code}/start", "json": body, "headers": headers}


def widget_start(
    client: httpx.Client,
    base_url: str,
    seed: LiveChatSeed,
    body: dict | None = None,
    *,
    idempotency_key: str | None = None,
) -> httpx.Response:
    """One widget start over HTTP (raises httpx errors when the answer is lost)."""
    return client.post(**_start_request(base_url, seed, body or start_body(seed), idempotency_key))


async def widget_start_async(
    client: httpx.AsyncClient,
    base_url: str,
    seed: LiveChatSeed,
    body: dict | None = None,
    *,
    idempotency_key: str | None = None,
) -> httpx.Response:
    """``widget_start`` for an ``httpx.AsyncClient``."""
    request = _start_request(base_url, seed, body or start_body(seed), idempotency_key)
    return await client.post(**request)
