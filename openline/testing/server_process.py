"""Start Openline in a real server process for tests (plain uvicorn, its own environment).

Tests that prove what a configured environment variable does, or how the server behaves
when a service is down, need a process of their own: settings and module-level limits are
read once at start, so changing them inside the test process proves nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[2]
# Variables of the test process that must not leak into a server started for one test.
_DROPPED = ("REDIS_URL", "OPENLINE_ENV", "DJANGO_SETTINGS_MODULE", "OPENLINE_TRUSTED_PROXIES")


def current_database_url() -> str:
    """The current test database as a DATABASE_URL another process can open."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class WorkerProcess:
    """A background ``manage.py`` process (db_worker, messengers_run) started for a test."""

    command: str
    process: subprocess.Popen
    args: tuple[str, ...] = ()

    def stop(self) -> None:
        """Terminate the process (it finishes its current step) and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    """A free TCP port on loopback (the root conftest's servers use it too)."""
    # Here, not in openline.conftest: importing the root conftest would pull every app (the
    # ASGI routing) into any test module that starts a server, past the import-linter contracts.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(*, database_url: str, var_dir: Path, env: dict | None) -> dict:
    """The environment of a process started for a test (the same for servers and workers)."""
    from django.conf import settings

    environment = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "openline.settings",
            "DATABASE_URL": database_url,
            "OPENLINE_VAR_DIR": str(var_dir),
            # Same key as the test process, so tokens it signs are accepted by the server.
            "OPENLINE_SECRET_KEY": settings.SECRET_KEY,
            "OPENLINE_ALLOWED_HOSTS": "127.0.0.1",
            "OPENLINE_LOG_LEVEL": "ERROR",
            "OPENLINE_DEMO_SITE": "0",
            **(env or {}),
        }
    )
    return environment


def start_worker(
    *,
    database_url: str,
    var_dir: Path,
    command: str = "db_worker",
    args: tuple[str, ...] = (),
    env: dict | None = None,
) -> WorkerProcess:
    """Start ``manage.py <command>`` (db_worker, messengers_run) with a server's environment."""
    if command == "db_worker":
        # A test's worker must not restart when a source file changes (DEBUG turns reload
        # on): a restart abandons the running task.
        args = (*(args or ("--interval", "0.2")), "--no-reload", "--no-startup-delay")
    process = subprocess.Popen(
        [sys.executable, "manage.py", command, *args],
        cwd=ROOT,
        env=_environment(database_url=database_url, var_dir=var_dir, env=env),
    )
    time.sleep(0.2)
    if process.poll() is not None:
        raise RuntimeError(f"manage.py {command} exited at once (exit code {process.returncode})")
    return WorkerProcess(command, process, tuple(args))


def start_server(
    *, database_url: str, var_dir: Path, env: dict | None = None, port: int | None = None
) -> ServerProcess:
    """Start ``uvicorn openline.asgi:application`` on ``port`` (else a free one); wait for /healthz."""
    port = port or free_port()
    environment = _environment(database_url=database_url, var_dir=var_dir, env=env)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "openline.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"),
            *("--log-level", "warning"),
        ],
        cwd=ROOT,
        env=environment,
    )
    server = ServerProcess(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the server did not start (exit code {process.poll()})")
        time.sleep(0.1)
