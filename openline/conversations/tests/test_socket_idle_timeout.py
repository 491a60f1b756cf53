"""The operator socket follows OPENLINE_SESSION_IDLE_TIMEOUT like the console pages do.

Real uvicorn (live_asgi), real websockets and a short real timeout: a frame on a session
idle past the timeout closes the socket (4401) and has no effect; the operator's own frames
count as activity, so typing in the inbox keeps the console's session signed in.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from openline.accounts import middleware
from openline.conversations.tests.test_access_over_time import (
    console_socket,
    next_of,
    reply_is_refused,
    visitor_socket,
)
from openline.livechat.tests.helpers import consented_visitor, run_async

pytestmark = pytest.mark.django_db(transaction=True)


def signed_in_now(user) -> str:
    """Sign the user in with the last activity stamped now, as the login view does."""
    client = Client()
    client.force_login(user)
    session = client.session
    session[middleware.LAST_SEEN] = int(time.time())
    session.save()
    return session.session_key


def last_seen(key: str) -> int:
    return Session.objects.get(session_key=key).get_decoded()[middleware.LAST_SEEN]


def console_page_status(server, key: str) -> int:
    response = httpx.get(
        f"{server.url}/console/contact-center/",
        cookies={"sessionid": key},
        follow_redirects=False,
    )
    return response.status_code


@pytest.fixture
def chat(channel):
    started, token = consented_visitor(channel, text="hello")
    return started.conversation, token


def test_a_reply_on_a_session_idle_past_the_timeout_is_refused(
    settings, live_asgi, operator, channel, chat
):
    settings.OPENLINE_SESSION_IDLE_TIMEOUT = 2
    conversation, token = chat
    key = signed_in_now(operator)

    async def body():
        ws = await console_socket(live_asgi, key)
        visitor_ws = await visitor_socket(live_asgi, channel, token)
        await ws.send_json_to(
            {"type": "reply", "conversation": conversation.pk, "text": "before", "client_id": "b"}
        )
        assert (await next_of(visitor_ws, "message"))["message"]["text"] == "before"
        await asyncio.sleep(3.5)  # idle: longer than the timeout, no frame sent
        code = await reply_is_refused(ws, visitor_ws, conversation.pk)
        await visitor_ws.disconnect()
        return code

    assert run_async(body) == 4401
    # Refused, not revived: the console page signs the idle session out too.
    assert console_page_status(live_asgi, key) == 302


def test_typing_in_the_inbox_keeps_the_session_alive(settings, live_asgi, operator, chat):
    settings.OPENLINE_SESSION_IDLE_TIMEOUT = 4  # stamps refresh every 2 s (half the timeout)
    conversation, _token = chat
    key = signed_in_now(operator)
    signed_in_at = last_seen(key)

    async def body():
        ws = await console_socket(live_asgi, key)
        for _ in range(7):  # 7 s of typing: longer than the timeout
            await ws.send_json_to({"type": "typing", "conversation": conversation.pk})
            await asyncio.sleep(1)
        # Still signed in on the socket: a reply goes through.
        await ws.send_json_to(
            {
                "type": "reply",
                "conversation": conversation.pk,
                "text": "still here",
                "client_id": "s",
            }
        )
        assert (await next_of(ws, "message"))["message"]["text"] == "still here"
        await ws.disconnect()

    run_async(body)
    assert last_seen(key) > signed_in_at
    # ... and on the pages: the socket's activity is the session's activity.
    assert console_page_status(live_asgi, key) == 200


def test_automatic_frames_do_not_keep_an_idle_session_alive(settings, live_asgi, operator):
    settings.OPENLINE_SESSION_IDLE_TIMEOUT = 2
    key = signed_in_now(operator)
    signed_in_at = last_seen(key)

    async def body():
        ws = await console_socket(live_asgi, key)
        for _ in range(5):  # a keep-alive every second, as a client left open might send
            await ws.send_json_to({"type": "ping"})
            try:
                return await ws.close_code(timeout=1)
            except TimeoutError:
                continue
        return None

    assert run_async(body) == 4401
    assert last_seen(key) == signed_in_at
