"""Serve the demo website (a little shop with the demo channel's live chat); ``serve`` starts it."""

from __future__ import annotations

import ipaddress
import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from openline.config import ConfigError
from openline.console.demo_site import DemoServer, Openline
from openline.core.serving import BindError, Listen, bind, demo_host, listen_from_env, page_url


class Command(BaseCommand):
    help = (
        "Serve the demo website: two shop pages embedding the demo channel's live chat, on "
        "loopback only (127.0.0.1, or ::1 beside an Openline on ::1); never in production. "
        "manage.py serve starts it on OPENLINE_DEMO_PORT."
    )

    def add_arguments(self, parser):
        try:
            listen = listen_from_env()
        except ConfigError:
            listen = Listen()  # handle() reports the bad variable
        parser.add_argument(
            "--fd", type=int, help="serve on this already listening socket (serve hands it over)"
        )
        parser.add_argument("--port", type=int, default=listen.demo_port, help="(without --fd)")
        parser.add_argument(
            "--openline-host", default=listen.host, help="the host Openline listens on"
        )
        parser.add_argument("--openline-port", type=int, default=listen.port)

    def handle(self, *args, **options):
        if settings.CONFIG.production:
            raise CommandError(
                "The demo website never runs in production (OPENLINE_ENV=production)."
            )
        try:
            listen_from_env()
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        if options["fd"] is not None:
            sock = socket.socket(fileno=options["fd"])
            if not ipaddress.ip_address(sock.getsockname()[0].split("%", 1)[0]).is_loopback:
                sock.close()
                raise CommandError("Demo website: the socket handed over is not on loopback.")
        else:
            host = demo_host(options["openline_host"])
            try:
                sock = bind(host, options["port"]).sock
            except BindError as exc:
                raise CommandError(f"Demo website: {exc}") from exc
            self.stdout.write(f"Demo website: {page_url(host, sock.getsockname()[1])}/")
            self.stdout.flush()
        server = DemoServer(sock, Openline(options["openline_host"], options["openline_port"]))
        try:
            server.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
