"""Real server processes facing a database or Redis that is not there.

* PostgreSQL at a closed port: the widget start, the API, a console page, a messenger hook
  answer 503 with Retry-After and their own body shape, within a couple of seconds; a
  websocket gets an ``unavailable`` error frame and closes with 1013.
* Redis at a closed port: consent capture over HTTP still answers 201 (events and cache-based
  limits never fail a request); a websocket is told and closed with 1013 (clients reconnect).

The drills (``drills/drill_db_outage.py``, ``drill_redis_outage.py``) stop and start real
services under load; these tests pin the answers themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import pytest
import websockets

from openline.core import unavailable
from openline.livechat.tests.helpers import accepted_for, consented_visitor
from openline.testing.server_process import current_database_url, start_server

CLOSED_POSTGRES = "postgres://openline@127.0.0.1:1/openline"
CLOSED_REDIS = "redis://127.0.0.1:1/0"
# The pool waits OPENLINE_DB_POOL_TIMEOUT (2 s) once, then the breaker answers at once.
ANSWER_WITHIN = 5.0


async def _socket_refusal(url: str, path: str, first: dict | None = None) -> tuple[dict, int]:
    async with websockets.connect(url.replace("http://", "ws://") + path, origin=url) as ws:
        if first is not None:
            # A socket refused at once may be closed before this frame is sent.
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(json.dumps(first))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        return frame, ws.close_code or 0


def test_every_entry_point_answers_503_fast_while_postgresql_is_down(tmp_path):
    server = start_server(database_url=CLOSED_POSTGRES, var_dir=tmp_path / "var")
    try:
        started = time.monotonic()
        start = httpx.post(
            server.url + "/widget/abc/start", json={"text": "hi"}, headers={"Origin": server.url}
        )
        first = time.monotonic() - started
        api = httpx.get(server.url + "/api/v1/conversations")
        page = httpx.get(server.url + "/console/", headers={"Accept": "text/html"})
        hook = httpx.post(server.url + "/hooks/telegram/some-token/", content=b"{}")
        rest = time.monotonic() - started - first
        frame, code = asyncio.run(_socket_refusal(server.url, "/ws/widget/abc/"))
        health = httpx.get(server.url + "/healthz")
    finally:
        server.stop()
    assert first < ANSWER_WITHIN, f"the first 503 took {first:.1f} s"
    assert rest < 1.0, f"three answers with the database known down took {rest:.1f} s"
    for response in (start, api, page, hook):
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.headers["Retry-After"] == "5"
    message = unavailable.MESSAGES["database"]
    assert start.json() == {"error": "unavailable", "message": message}
    assert hook.json() == {"error": "unavailable", "message": message}
    assert api.json() == {"code": "unavailable", "detail": message}
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Temporarily unavailable" in page.text
    assert frame["type"] == "error" and frame["code"] == "unavailable"
    assert code == 1013
    assert health.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_without_redis_capture_still_answers_201_and_sockets_close_with_1013(
    tmp_path, channel, own_cache
):
    _started, token = consented_visitor(channel)
    server = start_server(
        database_url=current_database_url(),
        var_dir=tmp_path / "var",
        env={"REDIS_URL": CLOSED_REDIS},
    )
    try:
        accepted = accepted_for(channel)
        body = {
            "text": "Hello while Redis is down",
            "client_id": "no-redis-1",
            "consent": {
                "version": accepted.version_id,
                "language": accepted.language,
                "sha256": accepted.sha256,
            },
        }
        started = time.monotonic()
        start = httpx.post(
            f"{server.url}/widget/{channel.code}/start",
            json=body,
            headers={"Origin": server.url},
            timeout=30,
        )
        seconds = time.monotonic() - started
        frame, code = asyncio.run(
            _socket_refusal(
                server.url, f"/ws/widget/{channel.code}/", {"type": "auth", "token": token}
            )
        )
        ready = httpx.get(server.url + "/readyz", timeout=30)
    finally:
        server.stop()
    assert start.status_code == 201, start.text
    assert seconds < ANSWER_WITHIN
    assert start.json()["record"]
    assert frame == {
        "type": "error",
        "code": "unavailable",
        "message": unavailable.MESSAGES["realtime"],
        "retry_after": 5,
    }
    assert code == 1013
    assert ready.status_code == 503
    assert ready.json()["checks"]["channel_layer"] == "unreachable"
