"""Run Openline laid out as in production, on this machine: two web processes and a worker.

Against the local PostgreSQL (the ``openline`` database, created if missing) and Redis, with
DEBUG off: two separate uvicorn processes on two ports (as two hosts behind a load balancer
would be), one task worker (``db_worker``) and one messenger runner (``messengers_run``),
plus the demo website embedding the demo channel's chat from the first web process. Nothing
is shared between them except PostgreSQL and Redis, so a session, a rate limit or a chat
started on one web process is seen by the other.

It stays usable on plain http://127.0.0.1: ``OPENLINE_ENV=production`` would redirect every
page to https and mark cookies Secure (right behind a TLS proxy, unusable without one), so
the processes run with ``OPENLINE_ENV=development`` and ``OPENLINE_DEBUG=0``; their secret
key, registry signing key and credential keys are generated once into ``var/prod-like/``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql

from openline.core.serving import BindError, base_url, bind, demo_host, page_url

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/openline"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Seconds the web processes may take to answer /healthz before the start counts as failed.
READY_WAIT = 180
ROOT = Path(__file__).resolve().parents[4]


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database ``url`` names if it is missing; True when created."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = str(info.get("dbname") or "")
    if not name:
        raise CommandError(f"The database URL names no database: {url}")
    maintenance = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    try:
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if found:
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    except psycopg.Error as exc:
        raise CommandError(f"PostgreSQL is not reachable or refused ({exc}).") from exc


def redis_reachable(url: str) -> None:
    """Fail with one clear line when Redis does not answer."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise CommandError(f"Redis at {url} is not reachable ({exc}).") from exc


class Command(BaseCommand):
    help = (
        "Run two web processes, a task worker and the messenger runner against the local "
        "PostgreSQL and Redis, DEBUG off (a production layout on one machine); Ctrl+C stops all."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
        parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--ports", default="8000,8002", help="comma-separated ports, one web process each"
        )
        parser.add_argument("--demo-port", type=int, default=8001, help="0: no demo website")
        parser.add_argument(
            "--var-dir",
            default=None,
            help="generated keys and demo logins (default: var/prod-like)",
        )

    def handle(self, *args, **options):
        try:
            ports = [int(part) for part in options["ports"].split(",") if part.strip()]
        except ValueError:
            raise CommandError("--ports takes comma-separated port numbers") from None
        if not ports:
            raise CommandError("--ports needs at least one port")
        database_url, redis_url = options["database_url"], options["redis_url"]
        if not database_url.startswith(("postgres://", "postgresql://")):
            raise CommandError("--database-url must be a postgres:// URL")
        var_dir = Path(options["var_dir"] or Path(settings.VAR_DIR) / "prod-like").resolve()
        var_dir.mkdir(parents=True, exist_ok=True)
        host = options["host"]

        created = ensure_database(database_url)
        redis_reachable(redis_url)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "openline.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "OPENLINE_ENV": "development",
            "OPENLINE_DEBUG": "0",
            "OPENLINE_VAR_DIR": str(var_dir),
            "OPENLINE_HOST": host,
            "OPENLINE_PORT": str(ports[0]),
            "OPENLINE_DEMO_PORT": str(options["demo_port"] or 8001),
            "OPENLINE_DEMO_SITE": "1" if options["demo_port"] else "0",
            "PYTHONUNBUFFERED": "1",
        }
        python = sys.executable
        self.stdout.write(
            f"Database {'created' if created else 'found'}; migrating and loading the demo data…"
        )
        self.stdout.flush()
        for step in (["migrate", "--no-input"], ["load_demo"]):
            done = subprocess.run(  # noqa: S603 - our own manage.py
                [python, "manage.py", *step], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
            )
            if done.returncode:
                raise CommandError(f"manage.py {step[0]} failed (exit code {done.returncode}).")

        sockets = []
        try:
            for port in ports:
                sockets.append(bind(host, port))
            demo_socket = (
                bind(demo_host(host), options["demo_port"]) if options["demo_port"] else None
            )
        except BindError as exc:
            for bound in sockets:
                bound.sock.close()
            raise CommandError(
                f"Openline {exc} (choose others with --ports / --demo-port)."
            ) from exc

        procs: list[tuple[str, subprocess.Popen]] = []
        for number, bound in enumerate(sockets, start=1):
            fd = bound.sock.fileno()
            web = [
                *(python, "-m", "uvicorn", "openline.asgi:application", "--fd", str(fd)),
                # Only OPENLINE_TRUSTED_PROXIES decides the client's address and scheme.
                *("--no-proxy-headers", "--no-server-header"),
                *("--ws-per-message-deflate", "false", "--log-level", "warning"),
            ]
            procs.append((f"web {number}", subprocess.Popen(web, cwd=ROOT, env=env, pass_fds=[fd])))
            bound.sock.close()  # uvicorn holds its own copy
        worker = [python, "manage.py", "db_worker", "--interval", "0.5", "--no-reload"]
        procs.append(("task worker", subprocess.Popen(worker, cwd=ROOT, env=env)))
        messengers = [python, "manage.py", "messengers_run"]
        procs.append(("messenger runner", subprocess.Popen(messengers, cwd=ROOT, env=env)))
        if demo_socket is not None:
            demo_fd = demo_socket.sock.fileno()
            demo = [
                *(python, "manage.py", "demo_site", "--fd", str(demo_fd)),
                *("--openline-host", host, "--openline-port", str(ports[0])),
            ]
            procs.append(
                ("demo website", subprocess.Popen(demo, cwd=ROOT, env=env, pass_fds=[demo_fd]))
            )
            demo_socket.sock.close()
        self._wait_until_serving(host, ports, procs)
        self._announce(host, ports, options["demo_port"], var_dir, database_url, redis_url)
        self._supervise(procs)

    def _wait_until_serving(self, host, ports, procs) -> None:
        """Announce only once every web process answers (importing the app takes a while)."""
        import httpx

        pending = [base_url(host, port) for port in ports]
        deadline = time.monotonic() + READY_WAIT
        try:
            while pending:
                exited = [name for name, proc in procs if proc.poll() is not None]
                if exited or time.monotonic() > deadline:
                    problem = f"the {exited[0]} exited" if exited else "no answer in time"
                    self._stop(procs)
                    raise CommandError(f"Openline did not start: {problem}.")
                try:
                    if httpx.get(pending[0] + "/healthz", timeout=2).status_code == 200:
                        pending.pop(0)
                        continue
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
        except KeyboardInterrupt:
            self._stop(procs)
            raise

    def _announce(self, host, ports, demo_port, var_dir: Path, database_url, redis_url) -> None:
        """Print where everything listens and the demo logins."""
        out = self.stdout
        out.write(self.style.SUCCESS("\nOpenline is running (production layout, DEBUG off)."))
        for number, port in enumerate(ports, start=1):
            out.write(f"  Web process {number}: {base_url(host, port)}/console/")
        if demo_port:
            out.write(f"  Demo website:  {page_url(demo_host(host), demo_port)}/ (chat on web 1)")
        out.write("  Task worker and messenger runner: one each")
        out.write(f"  PostgreSQL:    {_without_password(database_url)}")
        out.write(f"  Redis:         {_without_password(redis_url)}")
        try:
            logins = json.loads((var_dir / "demo-logins.json").read_text())
        except (OSError, ValueError):
            logins = {}
        if isinstance(logins, dict) and logins:
            out.write("  Demo logins:   " + ", ".join(f"{u} / {p}" for u, p in logins.items()))
        out.write("Sign in on one web process and open the other: the session is the same.")
        out.write("Press Ctrl+C to stop everything.\n")
        out.flush()

    @staticmethod
    def _stop(procs: list[tuple[str, subprocess.Popen]]) -> None:
        """Terminate every process; kill what has not stopped after 15 s."""
        for _name, proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for _name, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _supervise(self, procs: list[tuple[str, subprocess.Popen]]) -> None:
        """Wait until Ctrl+C, SIGTERM or any process exits; then stop them all."""

        def stop(*_):
            self._stop(procs)

        signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
        exited = None
        try:
            while exited is None:
                exited = next((name for name, proc in procs if proc.poll() is not None), None)
                time.sleep(0.3)
        except KeyboardInterrupt:
            pass
        finally:
            stop()
        if exited is not None:
            self.stderr.write(f"The {exited} stopped; stopped the others too.")
            sys.exit(1)


def _without_password(url: str) -> str:
    """Show a URL without its password (never print secrets)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
