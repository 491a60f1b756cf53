"""The four live chat rate limits, with the values configured in the environment.

Each test starts a real server process with one ``OPENLINE_LIVECHAT_RATE_*`` variable set to
a small "burst/per_second" value (the limits are read when the process starts), then talks to
it over real HTTP and websockets: the burst passes, the next one is refused with 429 or an
error frame, the connection stays usable, the bucket is per key (another visitor, IP or
connection is not affected), and it refills at the configured rate.

A refill rate of 0.5/s means one token per 2 s: a burst sent within that time is refused
exactly at burst + 1, and one more passes after waiting 2 s.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from openline.livechat.tests.helpers import accepted_for, consented_visitor, run_async
from openline.testing.server_process import current_database_url, start_server

pytestmark = pytest.mark.django_db(transaction=True)
REFILL = 2.1  # seconds for one token at 0.5/s, with a margin


@pytest.fixture
def server_with(tmp_path):
    """Start a server process with the given environment; stop it after the test."""
    servers = []

    def start(**env):
        server = start_server(
            database_url=current_database_url(), var_dir=tmp_path / "var", env=env
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class Socket:
    """A visitor's websocket to the server process, authenticated with its token."""

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def open(cls, server, channel, token: str, headers: dict | None = None) -> Socket:
        import websockets

        ws = await websockets.connect(
            f"{server.ws_url}/ws/widget/{channel.code}/",
            origin=server.url,
            additional_headers=headers or {},
            open_timeout=5,
        )
        socket = cls(ws)
        await socket.send({"type": "auth", "token": token})
        assert (await socket.next_of("ready"))["type"] == "ready"
        return socket

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def next_of(self, *kinds: str, timeout: float = 5) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), max(0.1, deadline - time.monotonic()))
            frame = json.loads(raw)
            if frame["type"] in kinds:
                return frame

    async def ping(self) -> dict:
        await self.send({"type": "ping"})
        return await self.next_of("pong", "error")

    async def message(self, client_id: str) -> dict:
        """Send a chat message; return the echoed message or the error frame."""
        await self.send({"type": "message", "text": f"text {client_id}", "client_id": client_id})
        return await self.next_of("message", "error")

    async def close(self) -> None:
        await self.ws.close()


def kind_of(frame: dict) -> str:
    return frame["code"] if frame["type"] == "error" else frame["type"]


# ----- starts per IP (HTTP) ---------------------------------------------------------------


def start_body(channel, client_id: str) -> str:
    accepted = accepted_for(channel)
    return json.dumps(
        {
            "text": "Hello",
            "client_id": client_id,
            "page_url": "https://shop.example/cart",
            "language": "en",
            "consent": {
                "version": accepted.version_id,
                "language": accepted.language,
                "sha256": accepted.sha256,
            },
        }
    )


def test_chat_starts_per_ip_follow_openline_livechat_rate_start(server_with, channel):
    # The proxy is trusted so that X-Forwarded-For names two different client addresses.
    server = server_with(OPENLINE_LIVECHAT_RATE_START="3/0.5", OPENLINE_TRUSTED_PROXIES="127.0.0.1")
    url = f"{server.url}/widget/{channel.code}/start"
    first_ip = {"X-Forwarded-For": "203.0.113.10", "Content-Type": "application/json"}
    other_ip = {"X-Forwarded-For": "203.0.113.11", "Content-Type": "application/json"}
    with httpx.Client(timeout=10) as http:
        statuses = [
            http.post(url, content=start_body(channel, f"s{i}"), headers=first_ip).status_code
            for i in range(4)
        ]
        assert statuses == [201, 201, 201, 429]
        refused = http.post(url, content=start_body(channel, "s5"), headers=first_ip)
        assert refused.status_code == 429
        assert refused.json() == {
            "error": "rate_limited",
            "message": "Too many chats started; wait a moment.",
        }
        # Another client address has its own bucket.
        assert (
            http.post(url, content=start_body(channel, "o1"), headers=other_ip).status_code == 201
        )
        time.sleep(REFILL)
        again = [
            http.post(url, content=start_body(channel, f"r{i}"), headers=first_ip).status_code
            for i in range(2)
        ]
        assert again == [201, 429]


# ----- frames per connection (websocket) --------------------------------------------------


def test_frames_per_connection_follow_openline_livechat_rate_frames(server_with, channel):
    server = server_with(OPENLINE_LIVECHAT_RATE_FRAMES="5/0.5")
    _, token = consented_visitor(channel)
    run_async(lambda: _frames_per_connection(server, channel, token))


async def _frames_per_connection(server, channel, token):
    first = await Socket.open(server, channel, token)
    assert [kind_of(await first.ping()) for _ in range(5)] == ["pong"] * 5
    refused = await first.ping()
    assert refused == {
        "type": "error",
        "code": "rate_limited",
        "message": "Too many frames; slow down.",
    }
    # Any frame counts, not only messages.
    assert kind_of(await first.message("over")) == "rate_limited"
    # The same visitor on a second connection has its own allowance.
    second = await Socket.open(server, channel, token)
    assert kind_of(await second.ping()) == "pong"
    # The refused connection stays open and refills at the configured rate.
    await asyncio.sleep(REFILL)
    assert [kind_of(await first.ping()) for _ in range(2)] == ["pong", "rate_limited"]
    await first.close()
    await second.close()


# ----- messages per visitor (websocket) ---------------------------------------------------


def test_messages_per_visitor_follow_openline_livechat_rate_visitor(server_with, channel):
    server = server_with(OPENLINE_LIVECHAT_RATE_VISITOR="3/0.5")
    _, token = consented_visitor(channel, client_id="v1")
    _, other_token = consented_visitor(channel, client_id="v2")
    run_async(lambda: _messages_per_visitor(server, channel, token, other_token))


async def _messages_per_visitor(server, channel, token, other_token):
    socket = await Socket.open(server, channel, token)
    assert [kind_of(await socket.message(f"m{i}")) for i in range(3)] == ["message"] * 3
    refused = await socket.message("flood")
    assert refused["code"] == "rate_limited" and refused["client_id"] == "flood"
    # The limit is per visitor: a second connection of the same visitor shares the bucket…
    again = await Socket.open(server, channel, token)
    assert kind_of(await again.message("other-socket")) == "rate_limited"
    # …another visitor from the same address does not.
    other = await Socket.open(server, channel, other_token)
    assert kind_of(await other.message("o1")) == "message"
    # Still usable: other frames pass, and messages pass again after the refill.
    assert kind_of(await socket.ping()) == "pong"
    await asyncio.sleep(REFILL)
    assert [kind_of(await socket.message(f"r{i}")) for i in range(2)] == [
        "message",
        "rate_limited",
    ]
    for each in (socket, again, other):
        await each.close()


# ----- messages per IP (websocket) --------------------------------------------------------


def test_messages_per_ip_follow_openline_livechat_rate_ip(server_with, channel):
    server = server_with(OPENLINE_LIVECHAT_RATE_IP="4/0.5", OPENLINE_TRUSTED_PROXIES="127.0.0.1")
    tokens = [consented_visitor(channel, client_id=f"v{i}")[1] for i in range(3)]
    run_async(lambda: _messages_per_ip(server, channel, tokens))


async def _messages_per_ip(server, channel, tokens):
    same_ip = {"X-Forwarded-For": "203.0.113.20"}
    first = await Socket.open(server, channel, tokens[0], same_ip)
    second = await Socket.open(server, channel, tokens[1], same_ip)
    elsewhere = await Socket.open(server, channel, tokens[2], {"X-Forwarded-For": "203.0.113.21"})
    # Two visitors, each under the per-visitor limit (6), share the address's 4.
    sent = [
        kind_of(await first.message("a1")),
        kind_of(await second.message("b1")),
        kind_of(await first.message("a2")),
        kind_of(await second.message("b2")),
        kind_of(await second.message("b3")),
        kind_of(await first.message("a3")),
    ]
    assert sent == ["message"] * 4 + ["rate_limited"] * 2
    # A visitor from another address is not affected; the limited sockets stay usable.
    assert kind_of(await elsewhere.message("c1")) == "message"
    assert kind_of(await first.ping()) == "pong"
    await asyncio.sleep(REFILL)
    assert [kind_of(await second.message("b4")), kind_of(await first.message("a4"))] == [
        "message",
        "rate_limited",
    ]
    for each in (first, second, elsewhere):
        await each.close()
