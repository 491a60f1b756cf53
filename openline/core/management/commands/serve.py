"""Start every process Openline needs: the ASGI web server, the task worker, the messengers loop.

In development it also starts the demo website (a little shop embedding the demo channel's chat),
on loopback only whatever OPENLINE_HOST says, and never in production.
``serve`` binds the listening sockets itself and hands them to the servers, so ``::`` listens on
IPv6 and IPv4 at once (asyncio alone would make it IPv6-only), with one or more web workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from openline.config import ConfigError
from openline.core.serving import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    BindError,
    bare_host,
    base_url,
    bind,
    demo_host,
    listen_from_env,
    page_url,
)

DEMO_REFUSED_IN_PRODUCTION = "not started: it never runs in production (OPENLINE_ENV=production)"


class Command(BaseCommand):
    help = (
        "Run the web + websocket server (uvicorn), the background task worker and the "
        "messengers loop (Telegram long polling, periodic sweeps) together; in development "
        "also the demo website on loopback (OPENLINE_DEMO_PORT, off with OPENLINE_DEMO_SITE=0)."
    )

    def add_arguments(self, parser):
        env = os.environ
        # String defaults go through type=int too: a bad variable is a one-line usage error.
        parser.add_argument("--host", default=bare_host(env.get("OPENLINE_HOST") or DEFAULT_HOST))
        parser.add_argument("--port", type=int, default=env.get("OPENLINE_PORT") or DEFAULT_PORT)
        parser.add_argument("--workers", type=int, default=env.get("OPENLINE_WEB_WORKERS") or 1)
        parser.add_argument(
            "--demo-port",
            type=int,
            default=None,
            help="port of the demo website on loopback (0: none; default OPENLINE_DEMO_PORT, "
            "8001); never started in production",
        )

    def handle(self, *args, **options):
        if options["workers"] > 1 and not settings.CONFIG.redis_url:
            self.stderr.write(
                "More than one web worker needs REDIS_URL (the in-memory channel layer is per process)."
            )
            sys.exit(2)
        if options["demo_port"] is None:
            try:
                listen = listen_from_env()
            except ConfigError as exc:
                raise CommandError(str(exc)) from exc
            options["demo_port"] = listen.demo_port if listen.demo_site else 0
        host, port = options["host"], options["port"]
        try:
            web_socket = bind(host, port)
        except BindError as exc:
            self.stderr.write(f"Openline {exc} (set OPENLINE_HOST / OPENLINE_PORT).")
            sys.exit(2)
        demo_socket = None
        demo_problem = ""
        if options["demo_port"] and settings.CONFIG.production:
            demo_problem = DEMO_REFUSED_IN_PRODUCTION
        elif options["demo_port"]:
            try:
                # Unauthenticated and reading the database: for this machine's browser only.
                demo_socket = bind(demo_host(host), options["demo_port"])
            except BindError as exc:
                demo_problem = (
                    f"not started: {exc} (set OPENLINE_DEMO_PORT, or OPENLINE_DEMO_SITE=0)"
                )

        python = sys.executable
        fd = web_socket.sock.fileno()
        web = [
            python,
            "-m",
            # uvicorn itself, reading the inherited socket as TCP (TCP_NODELAY on every
            # connection): see openline/core/uvicorn_run.py.
            "openline.core.uvicorn_run",
            "openline.asgi:application",
            # The socket bound above: dual-stack for "::", and shared by every worker.
            "--fd",
            str(fd),
            "--workers",
            str(options["workers"]),
            # Only openline.core.ip with OPENLINE_TRUSTED_PROXIES decides the client's address
            # and scheme; uvicorn's own rewriting would believe any loopback client.
            "--no-proxy-headers",
            "--no-server-header",
            # Chat frames are small; per-message deflate would double each socket's memory.
            "--ws-per-message-deflate",
            "false",
            "--log-level",
            "warning",
            # A worker busy with a reconnection storm on a loaded machine answers uvicorn's
            # health check late; killing it (the default after 5 s) would drop its sockets
            # and start the storm again.
            "--timeout-worker-healthcheck",
            "30",
        ]
        # Never reloaded on code changes (DEBUG would): the web server is not either, and a
        # restart abandons the running task.
        worker = [python, "manage.py", "db_worker", "--interval", "0.5", "--no-reload"]
        # Telegram long polling and the sweeps (leftover inbound events, due outbox items);
        # safe to run on several hosts at once.
        messengers = [python, "manage.py", "messengers_run"]
        procs = [
            subprocess.Popen(web, pass_fds=[fd]),
            subprocess.Popen(worker),
            subprocess.Popen(messengers),
        ]
        web_socket.sock.close()  # uvicorn holds its own copy
        demo = None
        if demo_socket is not None:
            demo_fd = demo_socket.sock.fileno()
            demo = subprocess.Popen(
                [
                    python,
                    "manage.py",
                    "demo_site",
                    "--fd",
                    str(demo_fd),
                    "--openline-host",
                    host,
                    "--openline-port",
                    str(port),
                ],
                pass_fds=[demo_fd],
            )
            demo_socket.sock.close()
        self._announce(options, web_socket.note, demo is not None, demo_problem)

        def stop(*_):
            running = procs + ([demo] if demo is not None else [])
            for proc in running:
                if proc.poll() is None:
                    proc.terminate()
            deadline = time.monotonic() + 10
            for proc in running:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()

        signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
        try:
            # The demo website is a convenience: if it stops, Openline keeps running.
            while all(proc.poll() is None for proc in procs):
                if demo is not None and demo.poll() is not None:
                    self.stderr.write(f"The demo website stopped (exit code {demo.returncode}).")
                    demo = None
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop()
        failed = [proc for proc in procs if proc.returncode not in (0, -signal.SIGTERM, None)]
        sys.exit(1 if failed else 0)

    def _announce(self, options, note: str, demo_running: bool, demo_problem: str) -> None:
        """Print where to open the console and the demo website, and the demo logins."""
        host, port = options["host"], options["port"]
        console = (settings.OPENLINE_PUBLIC_URL.rstrip("/") or base_url(host, port)) + "/console/"
        lines = [f"  Console:       {console}"]
        if demo_running:
            demo_url = page_url(demo_host(host), options["demo_port"])
            lines.append(f"  Demo website:  {demo_url}/")
        elif demo_problem:
            lines.append(f"  Demo website:  {demo_problem}")
        logins = _demo_logins()
        if logins:
            lines.append("  Demo logins:   " + ", ".join(f"{u} / {p}" for u, p in logins.items()))
        if note:
            lines.append(f"  Note: {note}")
        self.stdout.write(self.style.SUCCESS("\nOpenline is running."))
        for line in lines:
            self.stdout.write(line)
        self.stdout.write("Press Ctrl+C to stop.\n")
        self.stdout.flush()


def _demo_logins() -> dict[str, str]:
    """Return the demo users' passwords ``load_demo`` wrote (development only), else {}."""
    if settings.CONFIG.production:
        return {}
    path = settings.VAR_DIR / "demo-logins.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(user): str(password) for user, password in data.items()}
