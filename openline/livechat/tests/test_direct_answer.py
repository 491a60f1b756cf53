"""A sender is answered by its own socket, once; everyone else gets the event through Redis, once.

Two uvicorn processes share Redis and the database. The visitor has a tab on each process;
an operator and an administrator are connected too. Counting the frames each socket receives
shows that the sender's confirmation comes straight from its consumer (and its copy through
Redis is skipped), and that an administrator, who follows every channel through one group,
gets each event once.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from openline.livechat.tests.helpers import WsClient, accepted_for, run_async
from openline.livechat.tests.test_two_processes import next_of, two_servers  # noqa: F401

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def settle(*sockets: WsClient) -> None:
    """Receive until every socket has been quiet for a while (late duplicates arrive by then)."""
    for ws in sockets:
        await ws.send_json_to({"type": "ping"})
    for ws in sockets:
        await next_of(ws, "pong")
    await asyncio.sleep(0.5)
    for ws in sockets:
        while not await ws.receive_nothing(0.3):
            pass


def messages(ws: WsClient, client_id: str) -> list[dict]:
    return [
        f for f in ws.received if f["type"] == "message" and f["message"]["client_id"] == client_id
    ]


async def console(server, user) -> WsClient:
    client = Client()
    await sync_to_async(client.force_login)(user)
    ws = await WsClient.open(
        server, "/ws/console/", headers={"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    )
    await next_of(ws, "ready")
    return ws


def test_senders_are_answered_directly_and_nobody_gets_a_copy_twice(
    two_servers,  # noqa: F811
    channel,
    operator,
    administrator,
):
    run_async(
        lambda: _answered_once(
            servers=two_servers, channel=channel, operator=operator, administrator=administrator
        )
    )


async def _answered_once(servers, channel, operator, administrator):
    server_a, server_b = servers
    accepted = await sync_to_async(accepted_for)(channel)
    async with httpx.AsyncClient(base_url=server_a.url) as http:
        response = await http.post(
            f"/widget/{channel.code}/start",
            json={
                "text": "Hello",
                "client_id": "s1",
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
    conversation = started["conversation"]["id"]
    otto = await console(server_a, operator)
    ada = await console(server_b, administrator)
    tabs = []
    for server in (server_a, server_b):
        tab = await WsClient.open(server, f"/ws/widget/{channel.code}/")
        await tab.send_json_to({"type": "auth", "token": started["token"], "last_id": 10**9})
        await next_of(tab, "ready")
        tabs.append(tab)
    sender, other_tab = tabs

    await sender.send_json_to(
        {"type": "message", "text": "Two tabs", "client_id": "v1", "conversation": conversation}
    )
    answer = await next_of(sender, "message")
    await settle(sender, other_tab, otto, ada)

    # The sender's confirmation: the stored message, in the shape every visitor socket gets.
    assert set(answer) == {"type", "message"}
    assert answer["message"]["client_id"] == "v1" and answer["message"]["id"] > 0
    assert messages(sender, "v1") == [answer]
    # The visitor's other tab (other process) gets the same event through Redis, once.
    assert messages(other_tab, "v1") == [answer]
    # Staff: the operator of the channel and the administrator each get it once.
    for staff in (otto, ada):
        (event,) = messages(staff, "v1")
        assert event["message"] == answer["message"]
        assert event["conversation"]["id"] == conversation

    # An operator's reply: confirmed on the operator's socket directly, once, with the
    # conversation's new state; the administrator and the visitor's tabs get it once.
    await otto.send_json_to(
        {"type": "reply", "conversation": conversation, "text": "Hi!", "client_id": "o1"}
    )
    reply = await next_of(otto, "message")
    await settle(sender, other_tab, otto, ada)
    assert reply["message"]["client_id"] == "o1" and reply["conversation"]["status"] == "open"
    assert messages(otto, "o1") == [reply]
    assert messages(ada, "o1") == [reply]
    for tab in tabs:
        (event,) = messages(tab, "o1")
        assert event == {"type": "message", "message": reply["message"]}

    # A resent frame stores nothing and is confirmed to its sender only.
    await sender.send_json_to(
        {
            "type": "message",
            "text": "Two tabs",
            "client_id": "v1",
            "conversation": conversation,
            "resend": True,
        }
    )
    await settle(sender, other_tab, otto, ada)
    assert [m["message"]["id"] for m in messages(sender, "v1")] == [answer["message"]["id"]] * 2
    assert len(messages(other_tab, "v1")) == len(messages(otto, "v1")) == 1
    for ws in (*tabs, otto, ada):
        await ws.disconnect()
