"""A forced password change (an administrator's reset) holds on the operator websocket too.

Pages send such a user to the password form; the websocket must not stream the inbox or
store replies meanwhile. Real uvicorn (live_asgi), real websockets, real HTTP for the reset.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from openline.accounts.models import User
from openline.conversations.models import Message
from openline.conversations.tests.test_access_over_time import (
    _refused_after,
    admin_post,
    chat_with_client,  # noqa: F401 - fixture
    console_socket,
    server_side,
    signed_in,
)
from openline.livechat.tests.helpers import WsClient, run_async

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_administrators_reset_closes_the_operators_open_socket(
    live_asgi, operator, administrator, channel
):
    key, admin_key = signed_in(operator), signed_in(administrator)

    async def body():
        ws = await console_socket(live_asgi, key)
        response = await sync_to_async(admin_post)(
            live_asgi, admin_key, f"/console/users/{operator.pk}/reset-password/", {}
        )
        assert response.status_code == 200, response.text[:500]
        assert await ws.close_code() == 4401

    run_async(body)
    operator.refresh_from_db()
    assert operator.must_change_password is True


def test_a_socket_opened_before_changing_the_temporary_password_is_refused_at_connect(
    live_asgi,
    operator,
    channel,
    chat_with_client,  # noqa: F811
):
    conversation, _token = chat_with_client
    User.objects.filter(pk=operator.pk).update(must_change_password=True)
    # Signed in with the temporary password: the session itself is valid.
    client = Client()
    client.force_login(User.objects.get(pk=operator.pk))
    key = client.cookies["sessionid"].value
    assert client.get("/console/").url.startswith("/console/password/")

    async def body():
        ws = await WsClient.open(live_asgi, "/ws/console/", headers={"Cookie": f"sessionid={key}"})
        # A frame sent at once has no effect either.
        await ws.send_json_to(
            {"type": "reply", "conversation": conversation.pk, "text": "sneaky", "client_id": "s"}
        )
        code = await ws.close_code()
        assert not [f for f in ws.received if f.get("type") in ("ready", "message")], ws.received
        return code

    assert run_async(body) == 4401
    assert not Message.objects.filter(text="sneaky").exists()


def test_the_next_frame_is_refused_when_the_flag_is_set_behind_the_sockets_back(
    live_asgi,
    operator,
    channel,
    chat_with_client,  # noqa: F811
):
    def force_change(key):
        User.objects.filter(pk=operator.pk).update(must_change_password=True)

    assert _refused_after(live_asgi, operator, channel, chat_with_client, force_change) == 4401


def test_setting_only_the_flag_pushes_the_socket_closed(live_asgi, operator, channel):
    key = signed_in(operator)

    def force_change():
        user = User.objects.get(pk=operator.pk)
        user.must_change_password = True
        user.save(update_fields=["must_change_password"])

    async def body():
        ws = await console_socket(live_asgi, key)
        await server_side(live_asgi, force_change)
        assert await ws.close_code(timeout=3) == 4401

    run_async(body)
