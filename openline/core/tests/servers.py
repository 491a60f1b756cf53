"""Start real Openline server processes on the test database, the way an operator would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[3]


def database_url() -> str:
    """The test database as a DATABASE_URL a server process can open."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def server_env(**overrides: str) -> dict[str, str]:
    """The environment of a server process: this test run's database and secret, no proxies."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"OPENLINE_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS", "OPENLINE_ENV"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "openline.settings",
            "DATABASE_URL": database_url(),
            "OPENLINE_SECRET_KEY": settings.SECRET_KEY,
            "OPENLINE_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "OPENLINE_CHANNEL_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
            "OPENLINE_LOG_LEVEL": "WARNING",
            # Servers under test answer on their own port only (no demo website on 8001).
            "OPENLINE_DEMO_SITE": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


class ServerProcess:
    """One server started from a command line; its output goes to a file shown on failure."""

    def __init__(self, command: list[str], port: int, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix="openline-server-", suffix=".log")  # noqa: SIM115
        # A session of its own, so stopping it also stops uvicorn's workers and the task worker.
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 120) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start:\n{self.output()}")
            time.sleep(0.1)

    def terminate(self) -> None:
        """Ask the server to stop (``stop`` waits for it)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        # Whatever the group left behind (uvicorn workers, the task worker).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def serve_command(port: int, workers: int) -> list[str]:
    """``manage.py serve`` as the README starts it."""
    return [
        sys.executable,
        "manage.py",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def uvicorn_command(port: int, workers: int = 1) -> list[str]:
    """Plain uvicorn with no proxy flags, as the README documents it."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "openline.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return command + (["--workers", str(workers)] if workers > 1 else [])
