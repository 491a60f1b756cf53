"""Only OPENLINE_TRUSTED_PROXIES decides the client's IP and scheme, however the server starts.

Each server runs as a real process on the test database (started once per module and kept);
a loopback client sends forged X-Forwarded-For / X-Forwarded-Proto headers over HTTP and over
the visitor websocket, and the test reads what landed in the consent registry.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import httpx
import pytest
from django.apps import apps

from openline.conftest import free_port
from openline.core.tests.servers import (
    ServerProcess,
    serve_command,
    server_env,
    uvicorn_command,
)
from openline.testing.keys import write_signing_key

# One xdist worker starts these servers once for the whole module.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("proxy_servers")]

FORGED = "203.0.113.9"
FORGED_WS = "203.0.113.10"
PRODUCTION_ENV = {
    "OPENLINE_ENV": "production",
    "OPENLINE_PUBLIC_URL": "https://127.0.0.1",
    "OPENLINE_ALLOWED_HOSTS": "127.0.0.1",
}
MODES = [
    pytest.param("serve-1", id="serve-1-worker"),
    pytest.param("serve-2", id="serve-2-workers", marks=pytest.mark.redis),
    pytest.param("uvicorn", id="plain-uvicorn"),
]


class Servers:
    """Start each (mode, trusted) server once for the module, on demand."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.running: dict[tuple[str, bool], ServerProcess] = {}

    def get(self, mode: str, trusted: bool, redis_url: str | None) -> ServerProcess:
        key = (mode, trusted)
        if key not in self.running:
            port = free_port()
            env = server_env(**({"OPENLINE_TRUSTED_PROXIES": "127.0.0.1"} if trusted else {}))
            workers = 2 if mode.endswith("-2") else 1
            if workers > 1:
                # Several processes need the shared channel layer.
                env["REDIS_URL"] = redis_url or ""
            if mode == "production":
                env.update(PRODUCTION_ENV)
                env["OPENLINE_SIGNING_KEY_FILE"] = write_signing_key(
                    self.tmp / "registry-ed25519.pem"
                )
            if mode.startswith("serve"):
                command = serve_command(port, workers)
            else:
                command = uvicorn_command(port, workers)
            self.running[key] = ServerProcess(command, port, env).wait_ready()
        return self.running[key]

    def stop(self) -> None:
        # All at once: each waits for its workers to finish shutting down.
        for server in self.running.values():
            server.terminate()
        for server in self.running.values():
            server.stop()


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory):
    pool = Servers(tmp_path_factory.mktemp("proxy-servers"))
    yield pool
    pool.stop()


def _server(request, servers, mode: str, trusted: bool) -> ServerProcess:
    redis_url = request.getfixturevalue("redis_url") if mode.endswith("-2") else None
    return servers.get(mode, trusted, redis_url)


def _start_chat(server: ServerProcess, code: str) -> dict:
    """Run the widget's accept flow over HTTP with a forged X-Forwarded-For."""
    headers = {"X-Forwarded-For": FORGED, "User-Agent": "proxy-test"}
    body = {"text": "Hello", "client_id": "c1", "page_url": "https://shop.example/"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        offered = http.post(f"/widget/{code}/start", json=body, headers=headers)
        assert offered.status_code == 409, offered.text
        consent = offered.json()["consent"]
        body["consent"] = {k: consent[k] for k in ("version", "language", "sha256")}
        started = http.post(f"/widget/{code}/start", json=body, headers=headers)
    assert started.status_code == 201, started.text
    return started.json()


def _withdraw_over_websocket(server: ServerProcess, code: str, token: str, last_id: int) -> str:
    """Withdraw the consent over the visitor websocket with a forged X-Forwarded-For."""
    import websockets

    async def run() -> str:
        url = server.url.replace("http://", "ws://") + f"/ws/widget/{code}/"
        async with websockets.connect(
            url,
            origin=server.url,
            additional_headers={"X-Forwarded-For": FORGED_WS},
            open_timeout=10,
        ) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token, "last_id": last_id}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "ready":
                    await ws.send(json.dumps({"type": "withdraw"}))
                elif frame["type"] == "withdrawn":
                    return frame["record"]
                elif frame["type"] == "error":
                    raise AssertionError(frame)

    # A thread of its own: another test module may have left an event loop in this one.
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(record=asyncio.run(run())))
    thread.start()
    thread.join(30)
    assert "record" in outcome, "the websocket withdrawal did not finish"
    return outcome["record"]


def _recorded_ips(server: ServerProcess, code: str) -> tuple[str, str]:
    ConsentRecord = apps.get_model("consent", "ConsentRecord")  # noqa: N806
    started = _start_chat(server, code)
    given = ConsentRecord.objects.get(uuid=started["record"])
    withdrawn_uuid = _withdraw_over_websocket(
        server, code, started["token"], started["message"]["id"]
    )
    withdrawn = ConsentRecord.objects.get(uuid=withdrawn_uuid)
    assert (given.state, withdrawn.state) == ("given", "withdrawn")
    return given.ip, withdrawn.ip


@pytest.mark.parametrize("mode", MODES)
def test_forged_x_forwarded_for_is_ignored_without_trusted_proxies(request, servers, channel, mode):
    server = _server(request, servers, mode, trusted=False)
    assert _recorded_ips(server, channel.code) == ("127.0.0.1", "127.0.0.1")


@pytest.mark.redis
def test_plain_uvicorn_with_several_workers_ignores_forged_x_forwarded_for(
    request, servers, channel
):
    # Each worker process imports the application itself; none may wrap it in uvicorn's
    # proxy-header middleware.
    server = _server(request, servers, "uvicorn-2", trusted=False)
    assert _recorded_ips(server, channel.code) == ("127.0.0.1", "127.0.0.1")


@pytest.mark.parametrize("mode", MODES)
def test_x_forwarded_for_from_a_trusted_proxy_is_recorded(request, servers, channel, mode):
    server = _server(request, servers, mode, trusted=True)
    assert _recorded_ips(server, channel.code) == (FORGED, FORGED_WS)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
def test_x_forwarded_proto_is_believed_only_from_a_trusted_proxy(
    request, servers, channel, mode, trusted
):
    server = _server(request, servers, mode, trusted=trusted)
    # Without OPENLINE_PUBLIC_URL the loader names the origin the request came in on.
    loader = httpx.get(
        f"{server.url}/widget/{channel.code}.js",
        headers={"X-Forwarded-Proto": "https"},
        timeout=10,
    )
    assert loader.status_code == 200
    scheme = "https" if trusted else "http"
    assert f'var O = "{scheme}://127.0.0.1:{server.port}"' in loader.text


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
def test_production_redirects_to_https_unless_a_trusted_proxy_says_https(request, servers, trusted):
    server = _server(request, servers, "production", trusted=trusted)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        plain = http.get("/login/")
        claimed = http.get("/login/", headers={"X-Forwarded-Proto": "https"})
        probe = http.get("/healthz")
    assert plain.status_code == 301
    assert plain.headers["location"] == f"https://127.0.0.1:{server.port}/login/"
    assert "strict-transport-security" not in plain.headers
    # Load balancers probe over plain http.
    assert probe.status_code == 200
    if trusted:
        assert claimed.status_code == 200
        assert claimed.headers["strict-transport-security"] == "max-age=31536000"
    else:
        # A client cannot talk its way past the redirect (or into HSTS) with a header.
        assert claimed.status_code == 301
        assert "strict-transport-security" not in claimed.headers
