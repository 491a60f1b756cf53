"""Private services for the failure drills: a PostgreSQL cluster and a Redis server to kill.

Each runs on its own loopback port from a temp dir (never the machine's 5432 / 6379, which
others share). Everything started is registered and stopped at exit (``atexit``), even when
a drill fails; ``drills.harness`` re-exports these names (its docstring lists the API).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
_STARTED: list = []


class DrillFailure(RuntimeError):
    """Something a drill needs is missing or did not start (the drill fails, never skips)."""


def _register(thing) -> None:
    if thing not in _STARTED:
        _STARTED.append(thing)


def _forget(thing) -> None:
    if thing in _STARTED:
        _STARTED.remove(thing)


@atexit.register
def cleanup_all() -> None:
    """Stop everything a drill started, newest first (also runs at interpreter exit)."""
    while _STARTED:
        thing = _STARTED.pop()
        with contextlib.suppress(Exception):
            thing.cleanup()


def load_average() -> str:
    """The machine's 1/5/15-minute load, for the drill reports."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def free_port(lo: int = 18500, hi: int = 18599) -> int:
    """A free loopback port in [lo, hi] (the drills' own range)."""
    import socket

    for port in range(lo, hi + 1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise DrillFailure(f"no free port in {lo}-{hi}")


def _wait(check, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise DrillFailure(f"{what}: the process exited (code {proc.returncode})")
        time.sleep(0.1)
    raise DrillFailure(f"{what}: not ready after {timeout:.0f} s")


def _terminate(proc: subprocess.Popen | None, timeout: float = 10, group: bool = True) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait(timeout=10)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on its own port (the machine's binaries, a temp dir)."""

    def __init__(self, port: int, *, user: str = "postgres"):
        if not PG_BINS:
            raise DrillFailure("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
        self.bin = PG_BINS[0]
        self.port = port
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix=f"openline-drill-pg{port}-"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen | None = None
        self._as_root = os.geteuid() == 0
        _register(self)

    def _run_as(self) -> dict:
        return {"user": "postgres", "group": "postgres"} if self._as_root else {}

    def _initdb(self) -> None:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        out = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust"],
            capture_output=True,
            text=True,
            **self._run_as(),
        )
        if out.returncode != 0:
            raise DrillFailure(f"initdb failed: {out.stderr[-2000:]}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def start(self) -> PrivatePostgres:
        """Start the cluster (initdb on the first start) and wait until it accepts connections."""
        if not self.data.exists():
            self._initdb()
        # A postmaster killed with -9 leaves its pid file; postgres itself checks that the pid
        # is gone, so a restart after kill() works.
        self.proc = subprocess.Popen(
            [
                *(str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)),
                *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}"),
                *("-c", "max_connections=200", "-c", "fsync=on", "-c", "synchronous_commit=on"),
                *("-c", "shared_buffers=64MB", "-c", "logging_collector=off"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "postgres.log", "ab"),  # noqa: SIM115 - the child owns it
            start_new_session=True,
            **self._run_as(),
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until the server answers ``SELECT 1``."""
        _wait(self._ready, timeout, f"private PostgreSQL on {self.port}", self.proc)

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def url(self, dbname: str = "openline") -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def sql(self, statement: str, dbname: str = "postgres", params=None) -> list:
        """Run one statement in autocommit; return its rows (empty for commands)."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def create_database(self, name: str) -> str:
        """Create database ``name`` if missing; return its URL."""
        if not self.sql("SELECT 1 FROM pg_database WHERE datname = %s", params=[name]):
            self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions, like a clean restart)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the postmaster and every backend at once (a crash, not a shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
        _forget(self)


class PrivateRedis:
    """A throw-away Redis server on its own port, without persistence."""

    def __init__(self, port: int):
        self.binary = shutil.which("redis-server")
        if not self.binary:
            raise DrillFailure("redis-server is not installed (apt-get install redis-server)")
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix=f"openline-drill-redis{port}-"))
        self.proc: subprocess.Popen | None = None
        _register(self)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.root)),
                *("--daemonize", "no", "--loglevel", "warning"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15) -> None:
        _wait(self._ready, timeout, f"private Redis on {self.port}", self.proc)

    def _ready(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        _terminate(self.proc, group=False)
        self.proc = None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
        _forget(self)


@dataclass(eq=False)
class _TempDir:
    path: Path

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
