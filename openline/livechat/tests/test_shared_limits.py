"""Two real server processes on one database and one Redis count live chat limits together.

A client spread over several processes (a load balancer alternating between them) gets the
configured allowance once in total, not once per process: chat starts per IP over HTTP, and
messages per visitor and per IP over websockets. The refill rates are tiny (one token per
100 s) so that nothing refills while a test runs.
"""

from __future__ import annotations

import time

import httpx
import pytest

from openline.conftest import free_port
from openline.core.tests.servers import ServerProcess, server_env, uvicorn_command
from openline.livechat.tests.helpers import consented_visitor, run_async
from openline.livechat.tests.test_rate_limits import Socket, kind_of, start_body

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("servers"),
]


@pytest.fixture(scope="module")
def two_servers(django_db_setup, redis_url):
    """Two uvicorn processes sharing the test database and a Redis prefix of their own."""
    env = server_env(
        REDIS_URL=redis_url,
        OPENLINE_TRUSTED_PROXIES="127.0.0.1",  # so X-Forwarded-For names the client
        OPENLINE_LIVECHAT_RATE_START="4/0.01",
        OPENLINE_LIVECHAT_RATE_VISITOR="4/0.01",
        OPENLINE_LIVECHAT_RATE_IP="5/0.01",
    )
    ports = [free_port(), free_port()]
    servers = [ServerProcess(uvicorn_command(port), port, env) for port in ports]
    for server in servers:
        server.ws_url = server.url.replace("http://", "ws://")  # what Socket.open dials
    try:
        yield [server.wait_ready() for server in servers]
    finally:
        for server in servers:
            server.stop()


def test_chat_starts_per_ip_are_counted_once_across_two_processes(two_servers, channel):
    first, second = two_servers
    headers = {"X-Forwarded-For": "198.51.100.10", "Content-Type": "application/json"}
    with httpx.Client(timeout=15) as http:

        def start(server, client_id: str, ip_headers: dict = headers) -> int:
            url = f"{server.url}/widget/{channel.code}/start"
            body = start_body(channel, client_id)
            return http.post(url, content=body, headers=ip_headers).status_code

        # Alternating between the processes, like a round-robin load balancer.
        statuses = [start(server, f"s{i}") for i, server in enumerate([first, second] * 2)]
        assert statuses == [201] * 4, first.output() + second.output()
        # The IP's four starts are spent in total: both processes refuse the fifth.
        assert [start(first, "over-1"), start(second, "over-2")] == [429, 429]
        # Another client address still starts chats on either process.
        elsewhere = {**headers, "X-Forwarded-For": "198.51.100.11"}
        assert [start(second, "e1", elsewhere), start(first, "e2", elsewhere)] == [201, 201]


async def answer(socket: Socket, client_id: str) -> str:
    """Send a message; return "message" when it was stored or the error code refusing it.

    Several sockets of one visitor each receive every message of the visitor, so the answer
    to this message is picked out by its ``client_id``.
    """
    await socket.send({"type": "message", "text": f"text {client_id}", "client_id": client_id})
    while True:
        frame = await socket.next_of("message", "error")
        if frame["type"] == "error" and frame.get("client_id") == client_id:
            return frame["code"]
        if frame["type"] == "message" and frame["message"].get("client_id") == client_id:
            return "message"


def test_messages_per_visitor_are_counted_once_across_two_processes(two_servers, channel):
    _, token = consented_visitor(channel, client_id="v1", ip="198.51.100.20")
    run_async(lambda: _messages_per_visitor(two_servers, channel, token))


async def _messages_per_visitor(servers, channel, token):
    first, second = servers
    # One visitor with a tab on each process (each from its own address, so only the
    # per-visitor limit applies).
    here = await Socket.open(first, channel, token, {"X-Forwarded-For": "198.51.100.21"})
    there = await Socket.open(second, channel, token, {"X-Forwarded-For": "198.51.100.22"})
    sent = [
        await answer(here, "m1"),
        await answer(there, "m2"),
        await answer(here, "m3"),
        await answer(there, "m4"),
    ]
    assert sent == ["message"] * 4
    # Four in total: the fifth is refused whichever process receives it.
    assert await answer(here, "m5") == "rate_limited"
    assert await answer(there, "m6") == "rate_limited"
    # The sockets stay usable for other frames.
    assert kind_of(await here.ping()) == "pong"
    await here.close()
    await there.close()


def test_messages_per_ip_are_counted_once_across_two_processes(two_servers, channel):
    tokens = [
        consented_visitor(channel, client_id=f"ip{i}", ip="198.51.100.30")[1] for i in range(3)
    ]
    run_async(lambda: _messages_per_ip(two_servers, channel, tokens))


async def _messages_per_ip(servers, channel, tokens):
    first, second = servers
    same_ip = {"X-Forwarded-For": "198.51.100.31"}
    # Three visitors behind one address, on two processes, each under its own limit of 4.
    a = await Socket.open(first, channel, tokens[0], same_ip)
    b = await Socket.open(second, channel, tokens[1], same_ip)
    c = await Socket.open(second, channel, tokens[2], same_ip)
    sent = [
        await answer(a, "a1"),
        await answer(b, "b1"),
        await answer(c, "c1"),
        await answer(a, "a2"),
        await answer(b, "b2"),
    ]
    assert sent == ["message"] * 5
    # The address's five are spent: refused on both processes.
    assert await answer(c, "c2") == "rate_limited"
    assert await answer(a, "a3") == "rate_limited"
    for each in (a, b, c):
        await each.close()


# ----- Redis goes away -----------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test's own (it is killed during the test), on a free port."""
    import shutil
    import subprocess

    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        from openline.conftest import unavailable

        unavailable("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield url, process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_with_redis_down_starts_are_still_answered_and_limited_per_process(private_redis, channel):
    url, redis_process = private_redis
    env = server_env(
        REDIS_URL=url,
        OPENLINE_TRUSTED_PROXIES="127.0.0.1",
        OPENLINE_LIVECHAT_RATE_START="2/0.01",
    )
    ports = [free_port(), free_port()]
    servers = [ServerProcess(uvicorn_command(port), port, env) for port in ports]
    try:
        first, second = (server.wait_ready() for server in servers)
        headers = {"X-Forwarded-For": "198.51.100.40", "Content-Type": "application/json"}
        with httpx.Client(timeout=15) as http:

            def start(server, client_id: str) -> int:
                url = f"{server.url}/widget/{channel.code}/start"
                body = start_body(channel, client_id)
                return http.post(url, content=body, headers=headers).status_code

            # Shared while Redis is up: two in total.
            assert [start(first, "u1"), start(second, "u2"), start(first, "u3")] == [
                201,
                201,
                429,
            ]
            redis_process.kill()
            redis_process.wait()
            # Redis is gone: no request fails, and each process counts on its own (a fresh
            # bucket of two per process, then 429).
            started = time.monotonic()
            here = [start(first, f"d{i}") for i in range(3)]
            there = [start(second, f"e{i}") for i in range(3)]
            assert here == [201, 201, 429], first.output()
            assert there == [201, 201, 429], second.output()
            assert time.monotonic() - started < 10
    finally:
        for server in servers:
            server.stop()
