"""Start every process Openline needs: the ASGI web server, the task worker, the messengers loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Run the web + websocket server (uvicorn), the background task worker and the "
        "messengers loop (Telegram long polling, periodic sweeps) together."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("OPENLINE_HOST", "127.0.0.1"))
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("OPENLINE_PORT", "8000"))
        )
        parser.add_argument(
            "--workers", type=int, default=int(os.environ.get("OPENLINE_WEB_WORKERS", "1"))
        )

    def handle(self, *args, **options):
        if options["workers"] > 1 and not settings.CONFIG.redis_url:
            self.stderr.write(
                "More than one web worker needs REDIS_URL (the in-memory channel layer is per process)."
            )
            sys.exit(2)
        python = sys.executable
        web = [
            python,
            "-m",
            "uvicorn",
            "openline.asgi:application",
            "--host",
            options["host"],
            "--port",
            str(options["port"]),
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
        ]
        worker = [python, "manage.py", "db_worker", "--interval", "0.5"]
        # Telegram long polling and the sweeps (leftover inbound events, due outbox items);
        # safe to run on several hosts at once.
        messengers = [python, "manage.py", "messengers_run"]
        procs = [subprocess.Popen(web), subprocess.Popen(worker), subprocess.Popen(messengers)]
        base = settings.OPENLINE_PUBLIC_URL or f"http://{options['host']}:{options['port']}"
        self.stdout.write(self.style.SUCCESS(f"\nOpenline is running. Console: {base}/console/\n"))
        self.stdout.write("Press Ctrl+C to stop.\n")

        def stop(*_):
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            deadline = time.monotonic() + 10
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()

        signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
        try:
            while all(proc.poll() is None for proc in procs):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop()
        failed = [proc for proc in procs if proc.returncode not in (0, -signal.SIGTERM, None)]
        sys.exit(1 if failed else 0)
