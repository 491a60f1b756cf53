"""A console session lives in the database: one process signs in, another honours it and ends it.

Two real server processes behind no common memory (only PostgreSQL or SQLite, and Redis for
the channel layer and the cache): a session created by signing in on one works on the other,
and signing out on the other ends it everywhere, including the operator's open websocket on
the first process.
"""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from openline.conftest import PASSWORD, free_port
from openline.core.tests.servers import ServerProcess, server_env, uvicorn_command
from openline.livechat.tests.helpers import run_async

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("servers"),
]


@pytest.fixture(scope="module")
def two_servers(django_db_setup, redis_url):
    """Two uvicorn processes sharing the test database and a Redis prefix of their own."""
    env = server_env(REDIS_URL=redis_url)
    ports = [free_port(), free_port()]
    servers = [ServerProcess(uvicorn_command(port), port, env) for port in ports]
    try:
        yield [server.wait_ready() for server in servers]
    finally:
        for server in servers:
            server.stop()


def _sign_in(base: str, username: str) -> dict[str, str]:
    """Sign in through the login form of ``base``; return the session and CSRF cookies."""
    with httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        response = client.post(
            "/login/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": username,
                "password": PASSWORD,
            },
        )
        assert response.status_code == 302, response.text[:500]
        return {"sessionid": client.cookies["sessionid"], "csrftoken": client.cookies["csrftoken"]}


def _console(base: str, cookies: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{base}/console/profile/", cookies=cookies, timeout=30)


def test_a_session_made_on_one_process_works_on_the_other_and_logout_there_ends_it(
    two_servers, operator
):
    first, second = two_servers
    cookies = _sign_in(first.url, operator.username)
    # The other process knows the session: the console answers, no redirect to the login.
    assert _console(second.url, cookies).status_code == 200
    assert _console(first.url, cookies).status_code == 200
    # Signing out on the second process…
    out = httpx.post(
        f"{second.url}/logout/",
        data={"csrfmiddlewaretoken": cookies["csrftoken"]},
        cookies=cookies,
        timeout=30,
    )
    assert out.status_code == 302, out.text[:500]
    # …ends the session on both.
    for server in (first, second):
        response = _console(server.url, cookies)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login/")


def test_logout_on_one_process_closes_the_operators_socket_on_the_other(two_servers, operator):
    first, second = two_servers
    cookies = _sign_in(first.url, operator.username)
    run_async(lambda: _socket_closed_by_logout(first, second, cookies))


async def _socket_closed_by_logout(first, second, cookies):
    import websockets

    cookie_header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    async with websockets.connect(
        f"{first.url.replace('http://', 'ws://')}/ws/console/",
        origin=first.url,
        additional_headers={"Cookie": cookie_header},
        open_timeout=5,
    ) as socket:
        ready = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert ready["type"] == "ready", ready
        async with httpx.AsyncClient(timeout=30, cookies=cookies) as http:
            out = await http.post(
                f"{second.url}/logout/", data={"csrfmiddlewaretoken": cookies["csrftoken"]}
            )
        assert out.status_code == 302
        # The push crosses processes through Redis: the socket on the first closes as signed out.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
