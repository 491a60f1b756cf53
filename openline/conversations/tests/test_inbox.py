"""The operator workspace: who sees what, the three-dot menu actions, the operator websocket."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from openline.conversations import actions
from openline.conversations.models import Conversation, Message
from openline.livechat import flows
from openline.livechat.tests.helpers import WsClient, consented_visitor, run_async
from openline.openchannels.services import create_open_channel


@pytest.fixture
def chat(channel):
    started, _ = consented_visitor(channel, text="Where is my parcel?")
    return started.conversation


@pytest.fixture
def other_chat(administrator, other_operator):
    """A conversation on a channel Otto does not answer."""
    other = create_open_channel(
        actor=administrator, name="Shop B", operators=[other_operator], connectors=["livechat"]
    )
    visitor = flows.create_livechat_visitor(channel=other, language="en", user_agent="x")
    conversation = actions.start_conversation(channel=other, visitor=visitor)
    actions.receive_message(conversation=conversation, visitor=visitor, text="Shop B question")
    return conversation


def test_operators_see_only_their_channels_and_administrators_see_all(
    operator_client, admin_client, auditor_client, chat, other_chat
):
    inbox = operator_client.get("/console/inbox/")
    assert "Where is my parcel?" in inbox.text and "Shop B question" not in inbox.text
    assert operator_client.get(f"/console/inbox/{other_chat.pk}/").status_code == 404
    assert operator_client.get(f"/console/inbox/{chat.pk}/").status_code == 200
    everything = admin_client.get("/console/inbox/")
    assert "Where is my parcel?" in everything.text and "Shop B question" in everything.text
    assert auditor_client.get("/console/inbox/").status_code == 403
    assert auditor_client.get(f"/console/inbox/{chat.pk}/").status_code == 403


def test_boxes_sort_conversations_by_state(operator_client, operator, chat):
    assert "Where is my parcel?" in operator_client.get("/console/inbox/?box=new").text
    actions.send_reply(conversation=chat, actor=operator, text="Let me check")
    assert "Let me check" in operator_client.get("/console/inbox/?box=mine").text
    assert "Let me check" not in operator_client.get("/console/inbox/?box=waiting").text
    actions.receive_message(conversation=chat, visitor=chat.visitor, text="Thanks, waiting")
    assert "Thanks, waiting" in operator_client.get("/console/inbox/?box=waiting").text
    assert "Thanks, waiting" not in operator_client.get("/console/inbox/?box=closed").text


def test_chat_window_shows_page_consent_and_menu(operator_client, admin_client, chat):
    page = operator_client.get(f"/console/inbox/{chat.pk}/").text
    record = chat.consent_records.get()
    # Operators read the wording the client agreed to; the registry's record page is for
    # administrators and auditors, who get the link too.
    assert f'href="/c/{record.version.public_code}/"' in page
    assert f'href="/console/obtained-consents/{record.uuid}/"' not in page
    as_admin = admin_client.get(f"/console/inbox/{chat.pk}/").text
    assert f'href="/console/obtained-consents/{record.uuid}/"' in as_admin
    assert "https://shop.example/pricing" in page
    assert f'href="/console/crm/conversations/{chat.pk}/save/"' in page
    assert (
        "Save to CRM" in page
        and "Close conversation" in page
        and "Transfer to another operator" in page
    )


def test_client_text_is_escaped_in_the_console(operator_client, channel):
    started, _ = consented_visitor(channel, text='<img src=x onerror="alert(1)">', client_id="xss")
    page = operator_client.get(f"/console/inbox/{started.conversation.pk}/").text
    assert '<img src=x onerror="alert(1)">' not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_close_and_transfer_from_the_menu(channel, operator_client, operator, other_operator, chat):
    channel.operators.add(other_operator)
    response = operator_client.post(
        f"/console/inbox/{chat.pk}/transfer/", {"operator": other_operator.pk}
    )
    assert response.status_code == 302
    chat.refresh_from_db()
    assert chat.assignee == other_operator
    response = operator_client.post(f"/console/inbox/{chat.pk}/close/")
    assert response.status_code == 302
    chat.refresh_from_db()
    assert chat.status == "closed" and chat.closed_at is not None
    with pytest.raises(actions.ActionError) as refused:
        actions.send_reply(conversation=chat, actor=operator, text="too late")
    assert refused.value.code == "conversation_closed"


def test_transfer_only_to_an_operator_of_the_channel(operator_client, chat, other_operator):
    operator_client.post(
        f"/console/inbox/{chat.pk}/transfer/", {"operator": other_operator.pk}, follow=True
    )
    chat.refresh_from_db()
    assert chat.assignee is None


def test_an_operator_of_another_channel_cannot_act(chat, other_operator):
    client = Client()
    client.force_login(other_operator)
    assert client.post(f"/console/inbox/{chat.pk}/close/").status_code == 404
    chat.refresh_from_db()
    assert chat.status != "closed"


# ----- the operator websocket over a real server ------------------------------------------


async def operator_ws(live_asgi, user):
    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return await WsClient.open(live_asgi, "/ws/console/", headers={"Cookie": cookie})


async def next_of(ws, kind):
    while True:
        frame = await ws.receive_json_from()
        if frame["type"] == kind:
            return frame


@pytest.mark.django_db(transaction=True)
def test_operator_socket_refuses_auditors_and_strangers(live_asgi, auditor):
    run_async(
        lambda: _operator_socket_refuses_auditors_and_strangers(
            live_asgi=live_asgi, auditor=auditor
        )
    )


async def _operator_socket_refuses_auditors_and_strangers(live_asgi, auditor):
    ws = await operator_ws(live_asgi, auditor)
    assert await ws.close_code() == 4403 and ws.received == []
    anonymous = await WsClient.open(live_asgi, "/ws/console/")
    assert await anonymous.close_code() == 4403


@pytest.mark.django_db(transaction=True)
def test_operator_socket_replies_and_sees_only_its_channels(
    live_asgi, operator, channel, administrator, other_operator
):
    run_async(
        lambda: _operator_socket_replies_and_sees_only_its_channels(
            live_asgi=live_asgi,
            operator=operator,
            channel=channel,
            administrator=administrator,
            other_operator=other_operator,
        )
    )


async def _operator_socket_replies_and_sees_only_its_channels(
    live_asgi, operator, channel, administrator, other_operator
):
    started, _ = await sync_to_async(consented_visitor)(channel, text="first")
    chat = started.conversation
    other = await sync_to_async(create_open_channel)(
        actor=administrator, name="Shop B", operators=[other_operator], connectors=["livechat"]
    )
    ws = await operator_ws(live_asgi, operator)
    await next_of(ws, "ready")
    await ws.send_to(text_data="{not json")
    assert (await next_of(ws, "error"))["code"] == "bad_json"
    await ws.send_json_to(
        {"type": "reply", "conversation": chat.pk, "text": "x" * 4001, "client_id": "big"}
    )
    assert (await next_of(ws, "error"))["code"] == "too_long"
    await ws.send_json_to(
        {"type": "reply", "conversation": chat.pk, "text": "Hello from Otto", "client_id": "r1"}
    )
    event = await next_of(ws, "message")
    assert (
        event["message"]["text"] == "Hello from Otto" and event["conversation"]["status"] == "open"
    )
    # A conversation of a channel Otto does not answer: its events never reach him, replies are refused.
    visitor = await sync_to_async(flows.create_livechat_visitor)(
        channel=other, language="en", user_agent="x"
    )
    foreign = await sync_to_async(actions.start_conversation)(channel=other, visitor=visitor)
    await ws.send_json_to(
        {"type": "reply", "conversation": foreign.pk, "text": "hijack", "client_id": "h"}
    )
    assert (await next_of(ws, "error"))["code"] == "not_found"
    assert await ws.receive_nothing(0.3)
    assert not await sync_to_async(Message.objects.filter(text="hijack").exists)()
    await sync_to_async(actions.close_conversation)(conversation=chat, actor=operator)
    await next_of(ws, "conversation.closed")
    await ws.send_json_to(
        {"type": "reply", "conversation": chat.pk, "text": "late", "client_id": "late"}
    )
    error = await next_of(ws, "error")
    assert error["code"] == "conversation_closed" and error["client_id"] == "late"
    assert await sync_to_async(Conversation.objects.filter(status="closed").count)() == 1
    await ws.disconnect()
