"""A host website on a different origin (127.0.0.2) that embeds the widget with one script tag."""

from __future__ import annotations

import http.server
import threading

import pytest

from openline.conversations.models import Conversation, Message, Visitor


class HostSite:
    def __init__(
        self, widget_origin: str, code: str, *, bind: str = "127.0.0.2", hostname: str = ""
    ):
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'><title>Example shop</title>"
            "<style>body{font:16px system-ui;margin:0;background:#fafafa}header{background:#222;color:#fff;padding:1rem 2rem}"
            "main{padding:2rem}</style></head><body><header><b>Example shop</b></header>"
            "<main><h1>Pricing</h1><p>Plans for every team. Questions? Ask us in the chat.</p></main>"
            f'<script src="{widget_origin}/widget/{code}.js" async></script></body></html>'
        ).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((bind, 0), Handler)
        self.origin = f"http://{hostname or bind}:{self.server.server_address[1]}"
        self.url = f"{self.origin}/pricing?plan=team"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host_site(live_asgi, channel, administrator):
    """Serve a page on another origin embedding the widget; allow that origin on the channel."""
    from openline.livechat.origins import CONFIG_KEY
    from openline.openchannels.services import set_connector

    site = HostSite(live_asgi.url, channel.code)
    set_connector(
        actor=administrator,
        channel=channel,
        kind="livechat",
        is_enabled=True,
        config={CONFIG_KEY: [site.origin]},
    )
    yield site
    site.stop()


def nothing_stored() -> dict:
    return {
        "visitors": Visitor.objects.count(),
        "conversations": Conversation.objects.count(),
        "messages": Message.objects.count(),
    }


# Chromium now blocks third-party storage by default, so the widget's iframe (Openline's origin
# inside the shop's page) cannot keep its token and a client is remembered only while the page
# is open. Browsers that allow partitioned third-party storage remember the client; the
# returning-visitor tests run in such a browser, the others in the default one.
THIRD_PARTY_STORAGE_ARGS = [
    "--disable-features=ThirdPartyCookieDeprecationTrial,TpcdHeuristicsGrants,TrackingProtection3pcd,BlockThirdPartyCookies"
]


@pytest.fixture(scope="module")
def storage_browser(browser):
    """A second headless chromium that lets the widget iframe keep its localStorage."""
    from openline.conftest import CHROMIUM, CHROMIUM_ARGS

    instance = browser.browser_type.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + THIRD_PARTY_STORAGE_ARGS
    )
    yield instance
    instance.close()
