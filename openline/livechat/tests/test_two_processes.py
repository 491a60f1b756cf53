"""Two uvicorn processes share Redis and the database: visitor on one, operator on the other."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.test import Client

from openline.conftest import free_port
from openline.livechat.tests.helpers import WsClient, accepted_for, run_async

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[3]


def database_url() -> str:
    """The test database as a DATABASE_URL the server processes can open."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Server:
    def __init__(self, url: str, process: subprocess.Popen):
        self.url = url
        self.process = process


@pytest.fixture
def two_servers(redis_url, channel):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "openline.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "OPENLINE_CHANNEL_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
        "OPENLINE_SECRET_KEY": settings.SECRET_KEY,
        "OPENLINE_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENLINE_LOG_LEVEL": "WARNING",
    }
    servers = []
    for _ in range(2):
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "openline.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--lifespan",
                "off",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        servers.append(Server(f"http://127.0.0.1:{port}", process))
    deadline = time.monotonic() + 30
    for server in servers:
        while True:
            try:
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("a uvicorn server process did not start")
            time.sleep(0.1)
    yield servers
    for server in servers:
        server.process.terminate()
    for server in servers:
        server.process.wait(timeout=10)


async def next_of(ws, kind):
    while True:
        frame = await ws.receive_json_from(timeout=10)
        if frame["type"] == kind:
            return frame


def test_messages_cross_between_two_processes_over_redis(two_servers, channel, operator):
    run_async(
        lambda: _messages_cross_between_two_processes_over_redis(
            two_servers=two_servers, channel=channel, operator=operator
        )
    )


async def _messages_cross_between_two_processes_over_redis(two_servers, channel, operator):
    server_a, server_b = two_servers
    assert server_a.process.pid != server_b.process.pid
    accepted = await sync_to_async(accepted_for)(channel)
    async with httpx.AsyncClient(base_url=server_a.url) as http:
        response = await http.post(
            f"/widget/{channel.code}/start",
            json={
                "text": "Hello from process A",
                "client_id": "a1",
                "page_url": "https://shop.example/",
                "consent": {
                    "version": accepted.version_id,
                    "language": accepted.language,
                    "sha256": accepted.sha256,
                },
            },
        )
    assert response.status_code == 201, response.text
    started = response.json()
    conversation_id = started["conversation"]["id"]

    client = Client()
    await sync_to_async(client.force_login)(operator)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    operator_ws = await WsClient.open(server_b, "/ws/console/", headers={"Cookie": cookie})
    await next_of(operator_ws, "ready")
    visitor_ws = await WsClient.open(server_a, f"/ws/widget/{channel.code}/")
    await visitor_ws.send_json_to(
        {"type": "auth", "token": started["token"], "last_id": started["message"]["id"]}
    )
    await next_of(visitor_ws, "ready")

    # Visitor (process A) -> operator (process B).
    await visitor_ws.send_json_to(
        {
            "type": "message",
            "text": "Are you there?",
            "client_id": "a2",
            "conversation": conversation_id,
        }
    )
    event = await next_of(operator_ws, "message")
    assert (
        event["message"]["text"] == "Are you there?"
        and event["conversation"]["id"] == conversation_id
    )
    # Operator (process B) -> visitor (process A), with the typing indicator first.
    await operator_ws.send_json_to({"type": "typing", "conversation": conversation_id})
    typing = await next_of(visitor_ws, "typing")
    assert typing["sender"] == "operator" and typing["name"] == "Otto Operator"
    await operator_ws.send_json_to(
        {"type": "reply", "conversation": conversation_id, "text": "Yes, from B", "client_id": "b1"}
    )
    reply = await next_of(visitor_ws, "message")
    assert (
        reply["message"]["text"] == "Yes, from B" and reply["message"]["author"] == "Otto Operator"
    )
    # The visitor's read mark travels back to B.
    await visitor_ws.send_json_to(
        {"type": "read", "conversation": conversation_id, "up_to": reply["message"]["id"]}
    )
    marks = await next_of(operator_ws, "marks")
    while marks["sender"] != "operator":  # replying first marked the client's messages read
        marks = await next_of(operator_ws, "marks")
    assert marks["mark"] == "read" and marks["up_to"] == reply["message"]["id"]
    await visitor_ws.disconnect()
    await operator_ws.disconnect()
