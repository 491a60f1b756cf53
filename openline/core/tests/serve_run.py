"""``manage.py serve`` as a person starts it: a real process on its own SQLite file and var dir.

``prepared(tmp)`` migrates a database once (and loads the demo data); each ``ServeRun`` copies
it, runs ``load_demo`` with its own host and ports (so the demo website's origins match) and
starts ``serve``, reading the URLs it prints.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from openline.testing.server_process import free_port

ROOT = Path(__file__).resolve().parents[3]
READY = "Press Ctrl+C to stop."


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment of a fresh install: none of the test run's Openline or service settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENLINE_", "DJANGO_"))
        and key not in {"DATABASE_URL", "REDIS_URL", "CI"}
    }
    env.update({"PYTHONUNBUFFERED": "1", "OPENLINE_LOG_LEVEL": "WARNING", **overrides})
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    """Run ``manage.py`` with ``args`` to completion; return its output (fail loudly)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepared(tmp: Path) -> Path:
    """Migrate a fresh SQLite database with the demo data into ``tmp`` (once per module)."""
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp / 'openline.sqlite3'}", OPENLINE_VAR_DIR=str(tmp))
    manage("migrate", "--no-input", env=env)
    manage("load_demo", env=env)
    return tmp


class ServeRun:
    """One ``manage.py serve`` process on a copy of a prepared database."""

    def __init__(
        self,
        template: Path,
        host: str = "127.0.0.1",
        *,
        port: int | None = None,
        demo_port: int | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="openline-serve-"))
        shutil.copytree(template, self.dir, dirs_exist_ok=True)
        self.database = self.dir / "openline.sqlite3"
        self.port = port or free_port()
        self.demo_port = demo_port or free_port()
        self.env = clean_env(
            DATABASE_URL=f"sqlite:///{self.database}",
            OPENLINE_VAR_DIR=str(self.dir),
            OPENLINE_HOST=host,
            OPENLINE_PORT=str(self.port),
            OPENLINE_DEMO_PORT=str(self.demo_port),
            OPENLINE_WEB_WORKERS=str(workers),
            **(env or {}),
        )
        self.log = self.dir / "serve.log"
        self.process: subprocess.Popen | None = None
        self.leftovers: list[str] = []

    def load_demo(self) -> str:
        return manage("load_demo", env=self.env)

    def start(self, wait: bool = True) -> ServeRun:
        # A session of its own, so stopping it also stops uvicorn, the workers and the demo site.
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_printed()
            self.wait_answers(self.console_url.removesuffix("/console/") + "/healthz")
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_printed(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while READY not in self.output():
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"serve did not start:\n{self.output()[-4000:]}")
            time.sleep(0.1)
        return self.output()

    def printed(self, label: str) -> str | None:
        """Return what serve printed after "<label>:" (e.g. "Console"), or None."""
        match = re.search(rf"^\s+{re.escape(label)}:\s+(.+?)\s*$", self.output(), re.MULTILINE)
        return match.group(1) if match else None

    @property
    def console_url(self) -> str:
        url = self.printed("Console")
        assert url, self.output()
        return url

    @property
    def demo_url(self) -> str:
        url = self.printed("Demo website")
        assert url and url.startswith("http://"), self.output()
        return url

    def logins(self) -> dict[str, str]:
        text = self.printed("Demo logins") or ""
        return dict(item.split(" / ", 1) for item in text.split(", ") if " / " in item)

    def wait_answers(self, url: str, timeout: float = 120) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = httpx.get(url, timeout=2)
                if response.status_code < 500:
                    return response
            except httpx.HTTPError:
                pass
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{url} did not answer:\n{self.output()[-4000:]}")
            time.sleep(0.2)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM serve, as a service manager would; return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        code = self.process.returncode
        self.leftovers = self.group_alive()
        # Whatever serve left behind would be a bug; never leave it running.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return code

    def group_alive(self) -> list[str]:
        """Return the command lines of live processes still in serve's session."""
        assert self.process is not None
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                state, _ppid, _group, session = (
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[:4]
                )
                if int(session) == self.process.pid and state != "Z":
                    found.append((entry / "cmdline").read_text().replace("\0", " ").strip())
        return found

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
