"""Conversations and messages over the API: visibility, filters, replies, close, transfer."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from openline.conversations import actions
from openline.conversations.models import Conversation, Message, OutboxItem
from openline.conversations.tests.test_inbox import next_of, operator_ws
from openline.livechat.tests.helpers import WsClient, consented_visitor, on_server, run_async
from openline.openchannels.services import create_open_channel

URL = "/api/v1/conversations"


def _post(client: Client, url: str, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _chat(channel, origin: str = "livechat", text: str = "Hello", external_id: str = ""):
    visitor = actions.create_visitor(channel=channel, origin=origin)
    if external_id:
        visitor.external_id = external_id
        visitor.save(update_fields=["external_id"])
    conversation = actions.start_conversation(channel=channel, visitor=visitor)
    actions.receive_message(conversation=conversation, visitor=visitor, text=text, client_id="c1")
    return Conversation.objects.get(pk=conversation.pk)


@pytest.fixture
def shop(administrator, other_operator):
    return create_open_channel(actor=administrator, name="Shop", operators=[other_operator])


def test_who_sees_which_conversation(
    admin_client, operator_client, auditor_client, other_operator, channel, shop
):
    mine = _chat(channel, text="Where is my parcel?")
    theirs = _chat(shop, origin="telegram", text="Hi from Telegram", external_id="77")
    assert [c["id"] for c in admin_client.get(URL).json()["items"]] == [theirs.pk, mine.pk]
    assert [c["id"] for c in operator_client.get(URL).json()["items"]] == [mine.pk]
    assert [c["id"] for c in _client(other_operator).get(URL).json()["items"]] == [theirs.pk]
    # Another channel's conversation is as if it did not exist, for every operation.
    for url in (
        f"{URL}/{theirs.pk}",
        f"{URL}/{theirs.pk}/messages",
        f"{URL}/{theirs.pk}/transfer-targets",
    ):
        assert operator_client.get(url).status_code == 404
    for url, body in (
        (f"{URL}/{theirs.pk}/messages", {"text": "Hi"}),
        (f"{URL}/{theirs.pk}/close", {}),
        (f"{URL}/{theirs.pk}/transfer", {"operator_id": other_operator.pk}),
    ):
        assert _post(operator_client, url, body).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "new" and theirs.messages.count() == 1
    assert auditor_client.get(URL).status_code == 403
    assert auditor_client.get(f"{URL}/{mine.pk}").status_code == 403
    assert Client().get(URL).status_code == 401
    body = admin_client.get(f"{URL}/{theirs.pk}").json()
    assert body["origin"] == "telegram" and body["channel_id"] == shop.pk
    assert body["client"].startswith("Visitor ")


def test_filters_search_and_cursor_pages(admin_client, operator, channel, shop):
    first = _chat(channel, text="Invoice question")
    second = _chat(shop, origin="viber", text="Delivery time?", external_id="v1")
    third = _chat(channel, text="Another invoice, please")
    actions.close_conversation(conversation=first, actor=operator)

    def ids(**params):
        response = admin_client.get(URL, params)
        assert response.status_code == 200, response.content
        return [c["id"] for c in response.json()["items"]]

    assert ids(channel=shop.pk) == [second.pk]
    assert ids(status="closed") == [first.pk]
    assert ids(origin="viber") == [second.pk]
    assert ids(q="invoice") == [third.pk, first.pk]
    assert ids(assignee="none") == [third.pk, second.pk, first.pk]
    assert ids(since="2000-01-01") == [third.pk, second.pk, first.pk]
    assert ids(since="2999-01-01") == []
    page = admin_client.get(URL, {"limit": 2}).json()
    assert [c["id"] for c in page["items"]] == [third.pk, second.pk]
    assert ids(limit=2, cursor=page["next_cursor"]) == [first.pk]
    for params, field in (
        ({"status": "sleeping"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "x"}, "cursor"),
        ({"assignee": "someone"}, "assignee"),
        ({"q": "in\x00voice"}, "q"),
    ):
        refused = admin_client.get(URL, params)
        assert refused.status_code == 422 and field in refused.json()["detail"], refused.json()


def test_messages_list_with_cursor(operator_client, channel):
    chat = _chat(channel, text="one")
    for n, text in enumerate(("two", "three"), start=2):
        actions.receive_message(
            conversation=chat, visitor=chat.visitor, text=text, client_id=f"c{n}"
        )
    url = f"{URL}/{chat.pk}/messages"
    page = operator_client.get(url, {"limit": 2}).json()
    assert [m["text"] for m in page["items"]] == ["one", "two"]
    rest = operator_client.get(url, {"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [m["text"] for m in rest["items"]] == ["three"] and rest["next_cursor"] is None
    newest = operator_client.get(url, {"order": "desc", "limit": 1}).json()
    assert [m["text"] for m in newest["items"]] == ["three"]


def test_reply_close_and_transfer_go_through_the_actions(
    operator_client, admin_client, operator, administrator, channel
):
    chat = _chat(channel)
    url = f"{URL}/{chat.pk}"
    empty = _post(operator_client, f"{url}/messages", {"text": "   "})
    assert empty.status_code == 422 and empty.json()["detail"].startswith("text:")
    missing = _post(operator_client, f"{url}/messages", {})
    assert missing.status_code == 422 and "text" in missing.json()["detail"]
    sent = _post(operator_client, f"{url}/messages", {"text": "How can I help?", "client_id": "a"})
    assert sent.status_code == 201, sent.content
    again = _post(operator_client, f"{url}/messages", {"text": "How can I help?", "client_id": "a"})
    assert again.status_code == 200 and again.json()["id"] == sent.json()["id"]
    reply = Message.objects.get(pk=sent.json()["id"])
    assert reply.sender == "operator" and reply.author == operator
    chat.refresh_from_db()
    assert chat.status == "open" and chat.assignee == operator

    targets = operator_client.get(f"{url}/transfer-targets").json()
    assert targets == []  # Otto is the channel's only operator and has it already
    channel.operators.add(administrator)
    bad = _post(operator_client, f"{url}/transfer", {"operator_id": 987654})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("operator_id:")
    moved = _post(operator_client, f"{url}/transfer", {"operator_id": administrator.pk})
    assert moved.status_code == 200 and moved.json()["assignee_id"] == administrator.pk

    closed = _post(admin_client, f"{url}/close", {"reason": "Solved"})
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed" and closed.json()["closed_reason"] == "Solved"
    late = _post(operator_client, f"{url}/messages", {"text": "One more thing"})
    assert late.status_code == 409 and late.json()["code"] == "conflict"
    assert _post(admin_client, f"{url}/transfer", {"operator_id": operator.pk}).status_code == 409


def test_a_messenger_reply_goes_through_the_outbox(operator_client, channel):
    chat = _chat(channel, origin="telegram", external_id="4711")
    sent = _post(operator_client, f"{URL}/{chat.pk}/messages", {"text": "Thanks for writing"})
    assert sent.status_code == 201, sent.content
    message = Message.objects.get(pk=sent.json()["id"])
    assert OutboxItem.objects.filter(message=message).count() == 1
    assert sent.json()["delivery_state"] == "queued"


# ----- over a real server: the reply reaches the client's and the operators' websockets --------


@pytest.mark.django_db(transaction=True)
def test_a_reply_over_the_api_reaches_the_visitor_websocket(live_asgi, operator, channel):
    run_async(lambda: _reply_reaches_the_visitor(live_asgi, operator, channel))


async def _reply_reaches_the_visitor(live_asgi, operator, channel):
    started, token = await sync_to_async(consented_visitor)(channel, text="Hello there")
    chat = started.conversation
    visitor = await WsClient.open(live_asgi, f"/ws/widget/{channel.code}/")
    await visitor.send_json_to({"type": "auth", "token": token, "last_id": 0})
    assert (await visitor.receive_json_from())["type"] == "ready"
    ops = await operator_ws(live_asgi, operator)
    await next_of(ops, "ready")
    client = Client()
    await sync_to_async(client.force_login)(operator)

    def reply():
        return _post(client, f"{URL}/{chat.pk}/messages", {"text": "Sent over the API"})

    loop = asyncio_loop()
    response = await loop.run_in_executor(None, lambda: on_server(live_asgi, reply))
    assert response.status_code == 201, response.content
    while True:
        frame = await visitor.receive_json_from()
        if frame["type"] == "message":
            break
    assert frame["message"]["text"] == "Sent over the API"
    assert frame["message"]["sender"] == "operator"
    seen = await next_of(ops, "message")
    assert seen["message"]["text"] == "Sent over the API"
    await visitor.disconnect()
    await ops.disconnect()


def asyncio_loop():
    import asyncio

    return asyncio.get_running_loop()
