"""A client's messages through a real server process and real websockets (PostgreSQL).

Each message takes the one-statement path from the server's event loop (``message_pg``), or
the ORM path when that stores nothing; the promises hold either way: every confirmed message
is stored once with its webhook outbox rows, a frame sent twice at once is stored once, and a
closed conversation answers the ORM path's error frame.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from openline.conversations import actions
from openline.conversations.models import Conversation, Message
from openline.livechat.tests.helpers import WsClient, consented_visitor, run_async
from openline.livechat.tests.test_two_processes import next_of
from openline.testing.server_process import current_database_url, start_server
from openline.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(postgres_only, tmp_path):
    started = start_server(database_url=current_database_url(), var_dir=tmp_path)
    yield started
    started.stop()


async def _tab(server, channel, token) -> WsClient:
    tab = await WsClient.open(server, f"/ws/widget/{channel.code}/")
    await tab.send_json_to({"type": "auth", "token": token, "last_id": 10**9})
    await next_of(tab, "ready")
    return tab


async def _until(tab: WsClient, client_id: str) -> dict:
    while True:
        frame = await tab.receive_json_from(timeout=10)
        if frame.get("client_id") == client_id or (
            frame["type"] == "message" and frame["message"]["client_id"] == client_id
        ):
            return frame


def _close(conversation_id: int) -> None:
    conversation = Conversation.objects.get(pk=conversation_id)
    actions.close_conversation(conversation=conversation, actor=None, reason="Done")


def test_messages_over_a_real_socket_are_stored_once_with_their_webhooks(server, channel, operator):
    endpoint = WebhookEndpoint.objects.create(
        url="https://hooks.example/a", events=["message.received"], secret_encrypted="x"
    )
    started, token = consented_visitor(channel, text="Hello")
    conversation = started.conversation.pk

    async def body() -> dict:
        first, second = await _tab(server, channel, token), await _tab(server, channel, token)
        answers = {}
        for client_id in ("m1", "m2"):  # the first may teach the process the endpoint
            await first.send_json_to(
                {
                    "type": "message",
                    "text": client_id,
                    "client_id": client_id,
                    "conversation": conversation,
                }
            )
            answers[client_id] = await _until(first, client_id)
        # The same frame from two tabs at once (a resend racing its original).
        frame = {
            "type": "message",
            "text": "twice",
            "client_id": "m3",
            "conversation": conversation,
        }
        await asyncio.gather(first.send_json_to(frame), second.send_json_to(frame))
        answers["m3"] = [await _until(first, "m3"), await _until(second, "m3")]
        await sync_to_async(_close)(conversation)
        await first.send_json_to(
            {"type": "message", "text": "late", "client_id": "m4", "conversation": conversation}
        )
        answers["m4"] = await _until(first, "m4")
        await first.disconnect()
        await second.disconnect()
        return answers

    answers = run_async(body)

    for client_id in ("m1", "m2"):
        stored = Message.objects.get(conversation_id=conversation, client_id=client_id)
        assert answers[client_id]["message"]["id"] == stored.pk
        assert answers[client_id]["message"]["text"] == client_id
    stored = Message.objects.get(conversation_id=conversation, client_id="m3")
    assert [a["message"]["id"] for a in answers["m3"]] == [stored.pk, stored.pk]
    assert answers["m4"]["type"] == "error"
    assert answers["m4"]["code"] == "conversation_closed"
    assert not Message.objects.filter(client_id="m4").exists()
    row = Conversation.objects.get(pk=conversation)
    assert row.unread_count == 4 and row.last_message_preview == "twice"
    # One webhook event and one delivery per stored message, in the conversation's order.
    for client_id in ("m1", "m2", "m3"):
        message = Message.objects.get(conversation_id=conversation, client_id=client_id)
        [event] = WebhookEvent.objects.filter(payload__data__message_id=message.pk)
        assert event.payload["data"]["text"] == message.text
        delivery = WebhookDelivery.objects.get(event=event)
        assert (delivery.endpoint_id, delivery.order_key) == (
            endpoint.pk,
            f"conversation:{conversation}",
        )
