"""Helpers shared by the live chat tests."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from openline.livechat import flows, tokens
from openline.openchannels.policy import consent_offer
from openline.testing.aio import run_async  # noqa: F401 - re-exported for the live chat tests


def accepted_for(channel, language="en") -> flows.AcceptedConsent:
    shown = consent_offer(channel, language)
    return flows.AcceptedConsent(
        version_id=shown.version.id, language=shown.language, sha256=shown.sha256
    )


def start_body(
    channel, text: str = "Hello, is the team plan monthly?", language: str | None = None, **extra
) -> dict:
    """The JSON of an accepted chat start as the widget posts it (``language``: the consent's)."""
    accepted = accepted_for(channel)
    return {
        "text": text,
        "language": "en",
        "page_url": "https://shop.example/pricing",
        "consent": {
            "version": accepted.version_id,
            "language": language or accepted.language,
            "sha256": accepted.sha256,
        },
        **extra,
    }


def consented_visitor(
    channel,
    text="Hello",
    client_id="first",
    page_url="https://shop.example/pricing",
    ip="203.0.113.7",
):
    """Run the accept flow like the widget does and return (started, token)."""
    started = flows.livechat_start(
        channel=channel,
        visitor=None,
        accepted=accepted_for(channel),
        page_url=page_url,
        ip=ip,
        user_agent="Mozilla/5.0 test",
        language="en",
        text=text,
        client_id=client_id,
    )
    return started, tokens.make_token(visitor=started.visitor, channel=channel)


class WsClient:
    """A real websocket client with a few test conveniences."""

    def __init__(self, ws):
        self.ws = ws
        self.received: list = []

    @classmethod
    async def open(cls, server, path: str, headers: dict | None = None):
        import websockets

        url = server.url.replace("http://", "ws://") + path
        ws = await websockets.connect(
            url, origin=server.url, additional_headers=headers or {}, open_timeout=5
        )
        return cls(ws)

    async def send_json_to(self, data) -> None:
        await self.ws.send(json.dumps(data))

    async def send_to(self, text_data=None, bytes_data=None) -> None:
        await self.ws.send(text_data if text_data is not None else bytes_data)

    async def receive_json_from(self, timeout: float = 5):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = json.loads(raw)
        self.received.append(frame)
        return frame

    async def receive_nothing(self, timeout: float = 0.2) -> bool:
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            return True
        self.received.append(json.loads(raw))
        return False

    async def close_code(self, timeout: float = 5) -> int | None:
        """Wait for the server to close; return its close code (frames before it are kept)."""
        import websockets

        try:
            while True:
                raw = await asyncio.wait_for(self.ws.recv(), timeout)
                self.received.append(json.loads(raw))
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    async def disconnect(self) -> None:
        await self.ws.close()


def on_server(live_asgi, fn, **kwargs):
    """Run an action like a view would: in a worker thread of the live server's event loop.

    Playwright's sync API keeps an event loop in the test thread, where async_to_sync (used to
    publish events after commit) cannot run; the live server's loop is also the one whose
    in-memory channel layer the consumers listen on.
    """
    from asgiref.sync import sync_to_async

    loop = live_asgi.server.servers[0].get_loop()
    return asyncio.run_coroutine_threadsafe(sync_to_async(fn)(**kwargs), loop).result(15)


SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots" / "widget"


def shot(page, name: str, full_page: bool = False) -> Path:
    """Save a screenshot of the widget under var/screenshots/widget/ (look at it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def widget_frame(page):
    """Return the chat iframe's Frame (to evaluate script inside it)."""
    for frame in page.frames:
        if "/widget/" in frame.url and "/frame" in frame.url:
            return frame
    raise AssertionError("the chat iframe is not on the page")


STORAGE_PROBE = """() => {
  try { localStorage.setItem("openline-probe", "1"); localStorage.removeItem("openline-probe"); return true; }
  catch (e) { return false; }
}"""


FRAME = "iframe[title='Chat with us']"


def new_context(browser, width=1366, height=900):
    """A browser context the size of a desktop (or the given) screen, in English."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    context.set_default_timeout(10_000)
    return context


def open_chat(page, url):
    """Open the website at url, open the chat and return the chat iframe's locator."""
    page.goto(url)
    page.get_by_role("button", name="Chat with us").click()
    frame = page.frame_locator(FRAME)
    frame.get_by_label("Write a message…").wait_for()
    return frame


def write(frame, text):
    box = frame.get_by_label("Write a message…")
    box.fill(text)
    box.press("Enter")


def sent(frame, text):
    """Wait until the client's own message shows as sent (or later)."""
    frame.locator(".ol-me:not(.ol-pending):not(.ol-waiting)").filter(has_text=text).locator(
        ".ol-meta"
    ).filter(has_text=re.compile("Sent|Delivered|Read")).wait_for()
