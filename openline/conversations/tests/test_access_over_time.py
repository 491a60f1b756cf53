"""The operator websocket holds access over time, not only when it opens.

Real uvicorn (live_asgi), real websockets, real HTTP for logout and the user pages. Two
mechanisms are proven separately:

- push: logout, deactivation, a password or role change, removal from a channel reach the
  open socket at once (it closes, or leaves the channel's group) without waiting for a frame;
- frame by frame: when a change bypasses the push (a raw UPDATE, another process without a
  shared channel layer, an expired session), the next frame is refused and nothing is stored
  or delivered to the client.
"""

from __future__ import annotations

import asyncio
import contextvars
import secrets

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.models import Session
from django.test import Client

from openline.accounts.models import User
from openline.conversations import actions
from openline.conversations.models import Message
from openline.livechat import flows
from openline.livechat.tests.helpers import WsClient, consented_visitor, on_server, run_async
from openline.openchannels.models import OpenChannel
from openline.openchannels.services import create_open_channel, update_open_channel

pytestmark = pytest.mark.django_db(transaction=True)


async def server_side(live_asgi, fn, **kwargs):
    """Run ``fn`` like a view would, in the live server's worker thread (see ``on_server``).

    Started from an empty context: asgiref's markers of this test's own event loop must not
    follow the call into the server's loop.
    """
    return await asyncio.to_thread(contextvars.Context().run, on_server, live_asgi, fn, **kwargs)


def signed_in(user) -> str:
    """Sign the user in (a real database session) and return the session key."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def console_socket(server, session_key: str) -> WsClient:
    ws = await WsClient.open(server, "/ws/console/", headers={"Cookie": f"sessionid={session_key}"})
    frame = await ws.receive_json_from()
    assert frame["type"] == "ready", frame
    return ws


async def visitor_socket(server, channel, token) -> WsClient:
    ws = await WsClient.open(server, f"/ws/widget/{channel.code}/")
    await ws.send_json_to({"type": "auth", "token": token, "last_id": 0})
    while (await ws.receive_json_from())["type"] != "ready":
        pass
    return ws


async def next_of(ws, kind: str) -> dict:
    while True:
        frame = await ws.receive_json_from()
        if frame["type"] == kind:
            return frame


def logout_over_http(server, session_key: str) -> int:
    """POST /logout/ to the live server like the console's sign-out button does."""
    token = secrets.token_hex(16)
    response = httpx.post(
        f"{server.url}/logout/",
        cookies={"sessionid": session_key, "csrftoken": token},
        headers={"X-CSRFToken": token},
        follow_redirects=False,
    )
    return response.status_code


def admin_post(server, admin_key: str, path: str, data: dict) -> httpx.Response:
    token = secrets.token_hex(16)
    return httpx.post(
        f"{server.url}{path}",
        data={**data, "csrfmiddlewaretoken": token},
        cookies={"sessionid": admin_key, "csrftoken": token},
        follow_redirects=False,
    )


async def reply_is_refused(ws: WsClient, visitor_ws: WsClient, conversation_id: int) -> int:
    """Send a reply and return the close code; assert nothing was stored or delivered."""
    ws.received.clear()
    await ws.send_json_to(
        {"type": "reply", "conversation": conversation_id, "text": "after", "client_id": "late"}
    )
    code = await ws.close_code()
    assert not [m for m in ws.received if m.get("message", {}).get("text") == "after"]
    assert not await sync_to_async(Message.objects.filter(text="after").exists)()
    assert await visitor_ws.receive_nothing(0.5)
    return code


# ----- push: the socket closes without waiting for a frame ----------------------------------


def test_logout_closes_the_sessions_socket_and_leaves_other_sessions_open(
    live_asgi, operator, channel
):
    first, second = signed_in(operator), signed_in(operator)

    async def body():
        ws, other = await console_socket(live_asgi, first), await console_socket(live_asgi, second)
        assert await sync_to_async(logout_over_http)(live_asgi, first) == 302
        assert await ws.close_code() == 4401
        # The other browser's session is still valid and its socket keeps working.
        await other.send_json_to({"type": "ping"})
        assert (await next_of(other, "pong"))["type"] == "pong"
        await other.disconnect()

    run_async(body)
    assert not Session.objects.filter(session_key=first).exists()


def test_deactivation_by_an_administrator_closes_the_operators_socket(
    live_asgi, operator, administrator, channel
):
    key, admin_key = signed_in(operator), signed_in(administrator)

    async def body():
        ws = await console_socket(live_asgi, key)
        response = await sync_to_async(admin_post)(
            live_asgi,
            admin_key,
            f"/console/users/{operator.pk}/",
            {"display_name": "Otto Operator", "email": "", "role": "operator"},  # is_active off
        )
        assert response.status_code == 302, response.text[:500]
        assert await ws.close_code() == 4403

    run_async(body)
    operator.refresh_from_db()
    assert operator.is_active is False


def test_password_change_closes_the_users_sockets(live_asgi, operator, channel):
    key = signed_in(operator)

    def change_password():
        user = User.objects.get(pk=operator.pk)
        user.set_password("a completely new passphrase")
        user.save()

    async def body():
        ws = await console_socket(live_asgi, key)
        await server_side(live_asgi, change_password)
        assert await ws.close_code() == 4401

    run_async(body)


def test_removal_from_a_channel_stops_its_events_and_refuses_replies(
    live_asgi, operator, administrator, channel
):
    started, token = consented_visitor(channel, text="first")
    conversation = started.conversation
    key = signed_in(operator)

    async def body():
        ws = await console_socket(live_asgi, key)
        visitor_ws = await visitor_socket(live_asgi, channel, token)
        await server_side(
            live_asgi,
            update_open_channel,
            actor=administrator,
            channel=channel,
            name=channel.name,
            operators=[],
            crm_item_kind=channel.crm_item_kind,
        )
        assert (await next_of(ws, "channels"))["channels"] == []
        # The client's next message no longer reaches the removed operator.
        await visitor_ws.send_json_to(
            {
                "type": "message",
                "text": "anyone there?",
                "client_id": "v2",
                "conversation": conversation.pk,
            }
        )
        await next_of(visitor_ws, "message")
        assert await ws.receive_nothing(0.5)
        # A reply to the channel's conversation is refused and never delivered.
        await ws.send_json_to(
            {"type": "reply", "conversation": conversation.pk, "text": "after", "client_id": "r"}
        )
        assert (await next_of(ws, "error"))["code"] == "not_found"
        assert await visitor_ws.receive_nothing(0.5)
        await ws.disconnect()
        await visitor_ws.disconnect()

    run_async(body)
    assert not Message.objects.filter(text="after").exists()


def test_adding_to_a_channel_delivers_its_new_conversations_without_reconnecting(
    live_asgi, operator, administrator, channel
):
    shop_b = create_open_channel(actor=administrator, name="Shop B", connectors=["livechat"])
    key = signed_in(operator)

    async def body():
        ws = await console_socket(live_asgi, key)
        await server_side(
            live_asgi,
            update_open_channel,
            actor=administrator,
            channel=shop_b,
            name="Shop B",
            operators=[operator],
            crm_item_kind=shop_b.crm_item_kind,
        )
        assert (await next_of(ws, "channels"))["channels"] == sorted([channel.pk, shop_b.pk])
        await server_side(live_asgi, _start_chat, channel=shop_b, text="Shop B hi")
        started = await next_of(ws, "conversation.started")
        assert started["conversation"]["channel"] == shop_b.pk
        await ws.disconnect()

    run_async(body)


def test_administrators_follow_a_channel_created_after_they_connected(
    live_asgi, administrator, channel
):
    key = signed_in(administrator)

    async def body():
        ws = await console_socket(live_asgi, key)
        new = await server_side(
            live_asgi,
            create_open_channel,
            actor=administrator,
            name="Shop C",
            connectors=["livechat"],
        )
        assert new.pk in (await next_of(ws, "channels"))["channels"]
        await server_side(live_asgi, _start_chat, channel=new, text="Shop C hi")
        assert (await next_of(ws, "conversation.started"))["conversation"]["channel"] == new.pk
        await ws.disconnect()

    run_async(body)


def _start_chat(*, channel: OpenChannel, text: str):
    visitor = flows.create_livechat_visitor(channel=channel, language="en", user_agent="x")
    conversation = actions.start_conversation(channel=channel, visitor=visitor)
    actions.receive_message(conversation=conversation, visitor=visitor, text=text)
    return conversation


# ----- frame by frame: changes that bypass the push ------------------------------------------


@pytest.fixture
def chat_with_client(channel):
    started, token = consented_visitor(channel, text="hello")
    return started.conversation, token


def _refused_after(live_asgi, operator, channel, chat_with_client, change) -> int:
    conversation, token = chat_with_client
    key = signed_in(operator)

    async def body():
        ws = await console_socket(live_asgi, key)
        visitor_ws = await visitor_socket(live_asgi, channel, token)
        # A reply before the change is stored and delivered: the setup is sound.
        await ws.send_json_to(
            {"type": "reply", "conversation": conversation.pk, "text": "before", "client_id": "b"}
        )
        assert (await next_of(visitor_ws, "message"))["message"]["text"] == "before"
        assert (await next_of(ws, "message"))["message"]["text"] == "before"
        await sync_to_async(change)(key)
        code = await reply_is_refused(ws, visitor_ws, conversation.pk)
        await visitor_ws.disconnect()
        return code

    return run_async(body)


def test_reply_after_the_session_is_gone_is_refused(live_asgi, operator, channel, chat_with_client):
    # Logout in a process without a shared channel layer, or an expired session.
    def end_session(key):
        Session.objects.filter(session_key=key).delete()

    assert _refused_after(live_asgi, operator, channel, chat_with_client, end_session) == 4401


def test_reply_after_a_raw_deactivation_is_refused(live_asgi, operator, channel, chat_with_client):
    def deactivate(key):
        User.objects.filter(pk=operator.pk).update(is_active=False)

    assert _refused_after(live_asgi, operator, channel, chat_with_client, deactivate) == 4403


def test_reply_after_a_raw_password_change_is_refused(
    live_asgi, operator, channel, chat_with_client
):
    def change_password(key):
        User.objects.filter(pk=operator.pk).update(password=make_password("another passphrase"))

    assert _refused_after(live_asgi, operator, channel, chat_with_client, change_password) == 4401


def test_reply_after_a_raw_role_change_is_refused(live_asgi, operator, channel, chat_with_client):
    def make_auditor(key):
        User.objects.filter(pk=operator.pk).update(role="auditor")

    assert _refused_after(live_asgi, operator, channel, chat_with_client, make_auditor) == 4403


def test_reply_after_a_raw_removal_from_the_channel_is_refused(
    live_asgi, operator, channel, chat_with_client
):
    conversation, token = chat_with_client
    key = signed_in(operator)

    async def body():
        ws = await console_socket(live_asgi, key)
        visitor_ws = await visitor_socket(live_asgi, channel, token)
        # Straight in the join table: no signal, so no push; the frame check must hold.
        await sync_to_async(
            OpenChannel.operators.through.objects.filter(
                openchannel_id=channel.pk, user_id=operator.pk
            ).delete
        )()
        await ws.send_json_to(
            {"type": "reply", "conversation": conversation.pk, "text": "after", "client_id": "r"}
        )
        assert (await next_of(ws, "error"))["code"] == "not_found"
        assert await visitor_ws.receive_nothing(0.5)
        await ws.disconnect()
        await visitor_ws.disconnect()

    run_async(body)
    assert not Message.objects.filter(text="after").exists()
