"""The demo website ``manage.py serve`` starts beside Openline: a little shop showing the live chat.

Two pages (the shop and its delivery page) embed the demo channel's snippet, so a first run shows
the chat on a real website, on another origin, and the same client across pages. The pages are
rendered per request: a channel created after the site started (``load_demo``) shows up at once.

The demo channel is the one ``load_demo`` created and marked in its live chat connector's
configuration (``DEMO_MARKER``); no form writes that key, so a channel an administrator creates
(even one named "Website") is never taken for it.
"""

from __future__ import annotations

import http.server
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connections
from django.template.loader import render_to_string
from django.urls import reverse

from openline.core.serving import base_url, demo_host, loopback_hosts, page_url, url_host
from openline.livechat.origins import allowed_origins
from openline.openchannels.models import ConnectorKind, OpenChannel

DEMO_CHANNEL_NAME = "Website"
# In the demo channel's live chat connector config: {"demo": true}, written by load_demo only.
DEMO_MARKER = "demo"
PAGES = {
    "/": ("console/demo_site/shop.html", "Coffee"),
    "/delivery/": ("console/demo_site/delivery.html", "Delivery & returns"),
}
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" '
    b'r="14" fill="#6b3e26"/><path d="M11 9c6 4 4 10 10 14" stroke="#f3e3d3" stroke-width="3" '
    b'fill="none"/></svg>'
)


def marked_demo_channel() -> OpenChannel | None:
    """Return the Open Channel ``load_demo`` created and marked as the demo's, if any."""
    return (
        OpenChannel.objects.filter(
            connectors__kind=ConnectorKind.LIVECHAT, **{f"connectors__config__{DEMO_MARKER}": True}
        )
        .prefetch_related("connectors")
        .order_by("pk")
        .first()
    )


def demo_channel() -> OpenChannel | None:
    """Return the demo Open Channel (created by ``load_demo``) if its live chat is on."""
    channel = marked_demo_channel()
    if channel is None:
        return None
    connector = channel.connector(ConnectorKind.LIVECHAT)
    return channel if connector is not None and connector.is_enabled else None


@dataclass(frozen=True)
class Openline:
    """Where the demo website finds Openline: the host and port ``serve`` listens on."""

    host: str
    port: int

    def base_for(self, request_host: str) -> str:
        """Return Openline's base URL for a page requested on ``request_host``.

        OPENLINE_PUBLIC_URL when set; else the host name the visitor typed (when it is one this
        server answers on, e.g. localhost) with Openline's port, so shop and chat stay on one site.
        """
        if settings.OPENLINE_PUBLIC_URL:
            parts = urlsplit(settings.OPENLINE_PUBLIC_URL)
            return f"{parts.scheme}://{parts.netloc}"
        if request_host in loopback_hosts(self.host):
            return f"http://{request_host}:{self.port}"
        return base_url(self.host, self.port)


def request_host_and_origin(host_header: str) -> tuple[str, str]:
    """Split the Host header into the URL host and the page's origin; ("", "") if unusable."""
    try:
        parts = urlsplit(f"http://{host_header.strip()}")
        port = parts.port or 80
        hostname = parts.hostname or ""
    except ValueError:
        return "", ""
    if not hostname or any(c in hostname for c in " /\\\"'<>;"):
        return "", ""
    host = url_host(hostname)
    origin = f"http://{host}" + ("" if port == 80 else f":{port}")
    return host, origin


def render_page(path: str, openline: Openline, host_header: str, own_port: int) -> str | None:
    """Render the demo page at ``path`` (None: no such page)."""
    if path not in PAGES:
        return None
    template, title = PAGES[path]
    host, origin = request_host_and_origin(host_header)
    base = openline.base_for(host) if host else base_url(openline.host, openline.port)
    channel = demo_channel()
    context = {
        "title": title,
        "path": path,
        "channel": channel,
        "console_url": f"{base}/console/",
        "script_url": f"{base}/widget/{channel.code}.js" if channel else "",
        "origin": origin,
        "origin_allowed": bool(channel and origin in allowed_origins(channel)),
        # Browsers accept no IPv6 address in frame-ancestors: such a page can never show the chat.
        "ipv6_page": host.startswith("["),
        "page_url": page_url(demo_host(openline.host), own_port) + path,
        "settings_url": (
            base + reverse("conversations:livechat_settings", kwargs={"pk": channel.pk})
            if channel
            else ""
        ),
    }
    return render_to_string(template, context)


def handler_for(openline: Openline, own_port: int) -> type[http.server.BaseHTTPRequestHandler]:
    """Return the request handler class serving the demo pages."""

    class DemoHandler(http.server.BaseHTTPRequestHandler):
        server_version = "OpenlineDemo"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._answer(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            try:
                if path == "/favicon.ico":
                    self._send(200, FAVICON, "image/svg+xml", body)
                    return
                page = render_page(path, openline, self.headers.get("Host", ""), own_port)
                if page is None:
                    page = render_to_string("console/demo_site/not_found.html", {"path": path})
                    self._send(404, page.encode(), "text/html; charset=utf-8", body)
                    return
                self._send(200, page.encode(), "text/html; charset=utf-8", body)
            finally:
                # Each request runs in a thread of its own: close its database connection.
                connections.close_all()

        def _send(self, status: int, payload: bytes, content_type: str, body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if body:
                self.wfile.write(payload)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass

    return DemoHandler


class DemoServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server on a socket bound elsewhere (``serve`` binds and hands it over)."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, openline: Openline) -> None:
        own_port = sock.getsockname()[1]
        super().__init__(("127.0.0.1", 0), handler_for(openline, own_port), bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.address_family = sock.family
        self.server_address = sock.getsockname()
        sock.listen(128)
