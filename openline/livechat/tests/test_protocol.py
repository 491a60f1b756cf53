"""The visitor's websocket protocol over real websockets to a real uvicorn (live_asgi)."""

from __future__ import annotations

import time
from unittest import mock

import pytest
from asgiref.sync import sync_to_async

from openline.conversations import actions
from openline.conversations.models import Conversation, Message
from openline.livechat import limits, tokens
from openline.livechat.tests.helpers import WsClient, consented_visitor, run_async

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(live_asgi):
    return live_asgi


async def connect(server, code, token, last_id=0):
    comm = await WsClient.open(server, f"/ws/widget/{code}/")
    await comm.send_json_to({"type": "auth", "token": token, "last_id": last_id})
    return comm


async def ready(comm):
    frame = await comm.receive_json_from(timeout=5)
    assert frame["type"] == "ready", frame
    return frame


async def next_of(comm, kind, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        frame = await comm.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        if frame["type"] == kind:
            return frame


@pytest.fixture
def started(channel):
    return consented_visitor(channel)


def test_forged_and_expired_tokens_are_closed_without_data(server, channel, started):
    run_async(
        lambda: _forged_and_expired_tokens_are_closed_without_data(
            server=server, channel=channel, started=started
        )
    )


async def _forged_and_expired_tokens_are_closed_without_data(server, channel, started):
    _, token = started
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    with mock.patch(
        "django.core.signing.time.time", return_value=time.time() - tokens.MAX_AGE - 60
    ):
        expired = await sync_to_async(tokens.make_token)(
            visitor=started[0].visitor, channel=channel
        )
    for bad in (forged, expired, "", "not-a-token"):
        comm = await connect(server, channel.code, bad)
        assert await comm.close_code() == 4401
        assert comm.received == []
    # A frame other than auth first is refused the same way.
    comm = await WsClient.open(server, f"/ws/widget/{channel.code}/")
    await comm.send_json_to({"type": "message", "text": "hi"})
    assert await comm.close_code() == 4401
    assert comm.received == []


def test_token_for_another_channel_is_refused(server, channel, started, administrator):
    run_async(
        lambda: _token_for_another_channel_is_refused(
            server=server, channel=channel, started=started, administrator=administrator
        )
    )


async def _token_for_another_channel_is_refused(server, channel, started, administrator):
    from openline.openchannels.services import create_open_channel

    other = await sync_to_async(create_open_channel)(
        actor=administrator, name="Other", connectors=["livechat"]
    )
    comm = await connect(server, other.code, started[1])
    assert await comm.close_code() == 4401


def test_ready_returns_history_and_a_fresh_token(server, channel, started):
    run_async(
        lambda: _ready_returns_history_and_a_fresh_token(
            server=server, channel=channel, started=started
        )
    )


async def _ready_returns_history_and_a_fresh_token(server, channel, started):
    comm = await connect(server, channel.code, started[1])
    frame = await ready(comm)
    assert [m["text"] for m in frame["messages"]] == ["Hello"]
    assert frame["consent_required"] is False and frame["has_consent"] is True
    assert (
        tokens.read_token(frame["token"], channel_code=channel.code)
        == started[0].visitor.public_id.hex
    )
    await comm.disconnect()


def test_bad_frames_get_an_error_and_the_connection_stays_usable(server, channel, started):
    run_async(
        lambda: _bad_frames_get_an_error_and_the_connection_stays_usable(
            server=server, channel=channel, started=started
        )
    )


async def _bad_frames_get_an_error_and_the_connection_stays_usable(server, channel, started):
    comm = await connect(server, channel.code, started[1])
    await ready(comm)
    await comm.send_to(text_data="this is not json")
    assert (await comm.receive_json_from())["code"] == "bad_json"
    await comm.send_to(text_data="[1, 2]")
    assert (await comm.receive_json_from())["code"] == "bad_frame"
    await comm.send_json_to({"type": "launch_rockets"})
    assert (await comm.receive_json_from())["code"] == "unknown_type"
    await comm.send_json_to({"type": "message", "text": "x" * 4001, "client_id": "long"})
    error = await comm.receive_json_from()
    assert error["code"] == "too_long" and error["client_id"] == "long"
    await comm.send_to(bytes_data=b"\x00\x01")
    assert (await comm.receive_json_from())["code"] == "bad_frame"
    await comm.send_json_to({"type": "read", "conversation": "nope", "up_to": 1})
    assert (await comm.receive_json_from())["code"] == "bad_frame"
    # Still usable: a good message is stored and echoed.
    await comm.send_json_to({"type": "message", "text": "still here", "client_id": "ok-1"})
    frame = await next_of(comm, "message")
    assert frame["message"]["text"] == "still here"
    assert await sync_to_async(Message.objects.filter(text="x" * 4001).exists)() is False
    await comm.disconnect()


def test_too_many_messages_get_rate_limited_and_the_connection_stays(server, channel, started):
    run_async(
        lambda: _too_many_messages_get_rate_limited_and_the_connection_stays(
            server=server, channel=channel, started=started
        )
    )


async def _too_many_messages_get_rate_limited_and_the_connection_stays(server, channel, started):
    comm = await connect(server, channel.code, started[1])
    await ready(comm)
    with mock.patch.object(limits, "MESSAGES_PER_VISITOR", limits.RateLimiter(3, 0.001)):
        for i in range(3):
            await comm.send_json_to({"type": "message", "text": f"m{i}", "client_id": f"c{i}"})
            await next_of(comm, "message")
        await comm.send_json_to({"type": "message", "text": "flood", "client_id": "c-flood"})
        error = await next_of(comm, "error")
        assert error["code"] == "rate_limited" and error["client_id"] == "c-flood"
    with mock.patch.object(limits, "MESSAGES_PER_IP", limits.RateLimiter(1, 0.001)):
        await comm.send_json_to({"type": "message", "text": "ip one", "client_id": "ip-1"})
        await next_of(comm, "message")
        await comm.send_json_to({"type": "message", "text": "ip two", "client_id": "ip-2"})
        assert (await next_of(comm, "error"))["code"] == "rate_limited"
    await comm.send_json_to({"type": "ping"})
    assert (await next_of(comm, "pong"))["type"] == "pong"
    assert not await sync_to_async(Message.objects.filter(text__in=["flood", "ip two"]).exists)()
    await comm.disconnect()


def test_message_to_a_closed_conversation_is_refused_with_a_reason(
    server, channel, started, operator
):
    run_async(
        lambda: _message_to_a_closed_conversation_is_refused_with_a_reason(
            server=server, channel=channel, started=started, operator=operator
        )
    )


async def _message_to_a_closed_conversation_is_refused_with_a_reason(
    server, channel, started, operator
):
    conversation = started[0].conversation
    await sync_to_async(actions.close_conversation)(conversation=conversation, actor=operator)
    comm = await connect(server, channel.code, started[1])
    await ready(comm)
    await comm.send_json_to(
        {"type": "message", "text": "late", "client_id": "late", "conversation": conversation.id}
    )
    error = await next_of(comm, "error")
    assert error["code"] == "conversation_closed" and "closed" in error["message"]
    # Without a conversation id the client starts a new chat (consent is still current).
    await comm.send_json_to({"type": "message", "text": "new chat", "client_id": "new"})
    frame = await next_of(comm, "message")
    assert frame["message"]["conversation"] != conversation.id
    await comm.disconnect()


def test_a_channel_deactivated_under_an_open_socket_takes_no_more_messages(
    server, channel, started, administrator
):
    run_async(
        lambda: _a_channel_deactivated_under_an_open_socket_takes_no_more_messages(
            server=server, channel=channel, started=started, administrator=administrator
        )
    )


async def _a_channel_deactivated_under_an_open_socket_takes_no_more_messages(
    server, channel, started, administrator
):
    from openline.openchannels.services import set_channel_active

    conversation = started[0].conversation
    comm = await connect(server, channel.code, started[1])
    await ready(comm)
    await sync_to_async(set_channel_active)(actor=administrator, channel=channel, is_active=False)
    count = await sync_to_async(Message.objects.count)()
    for frame in (
        {"type": "message", "text": "late", "client_id": "late", "conversation": conversation.id},
        {"type": "message", "text": "new chat", "client_id": "new"},
    ):
        await comm.send_json_to(frame)
        error = await next_of(comm, "error")
        assert error["code"] == "not_found", error
    assert await sync_to_async(Message.objects.count)() == count
    await comm.disconnect()
    # A new connection is refused: at the handshake, or closed before any data.
    try:
        again = await connect(server, channel.code, started[1])
    except Exception:  # noqa: BLE001 - the handshake itself was refused
        return
    assert await again.close_code() is not None
    assert again.received == []


def test_a_resent_message_is_stored_once(server, channel, started):
    run_async(
        lambda: _a_resent_message_is_stored_once(server=server, channel=channel, started=started)
    )


async def _a_resent_message_is_stored_once(server, channel, started):
    comm = await connect(server, channel.code, started[1])
    await ready(comm)
    for _ in range(3):
        await comm.send_json_to({"type": "message", "text": "once", "client_id": "same-id"})
        frame = await next_of(comm, "message")
        assert frame["message"]["client_id"] == "same-id"
    assert await sync_to_async(Message.objects.filter(client_id="same-id").count)() == 1
    await comm.disconnect()


def test_reconnect_resyncs_from_the_last_id(server, channel, started, operator):
    run_async(
        lambda: _reconnect_resyncs_from_the_last_id(
            server=server, channel=channel, started=started, operator=operator
        )
    )


async def _reconnect_resyncs_from_the_last_id(server, channel, started, operator):
    conversation = started[0].conversation
    first = await sync_to_async(lambda: Message.objects.get(client_id="first"))()
    # The operator answers while the visitor is offline.
    for text in ("one", "two"):
        await sync_to_async(actions.send_reply)(
            conversation=conversation, actor=operator, text=text
        )
    comm = await connect(server, channel.code, started[1], last_id=first.id)
    frame = await ready(comm)
    assert [m["text"] for m in frame["messages"]] == ["one", "two"]
    await comm.disconnect()


def test_a_visitor_sees_only_their_own_conversations(server, channel, started, operator):
    run_async(
        lambda: _a_visitor_sees_only_their_own_conversations(
            server=server, channel=channel, started=started, operator=operator
        )
    )


async def _a_visitor_sees_only_their_own_conversations(server, channel, started, operator):
    other_started, other_token = await sync_to_async(consented_visitor)(
        channel, text="I am B", client_id="b"
    )
    comm = await connect(server, channel.code, started[1])
    await ready(comm)
    await sync_to_async(actions.send_reply)(
        conversation=other_started.conversation, actor=operator, text="for B only"
    )
    await comm.send_json_to(
        {"type": "read", "conversation": other_started.conversation.id, "up_to": 10**6}
    )
    error = await next_of(comm, "error")
    assert error["code"] == "not_found"
    await comm.send_json_to(
        {
            "type": "message",
            "text": "sneak",
            "client_id": "s",
            "conversation": other_started.conversation.id,
        }
    )
    assert (await next_of(comm, "error"))["code"] == "not_found"
    assert await comm.receive_nothing(timeout=0.3)
    assert not await sync_to_async(Message.objects.filter(text="sneak").exists)()
    await comm.disconnect()


def test_withdrawal_closes_the_chat_and_asks_again(server, channel, started):
    run_async(
        lambda: _withdrawal_closes_the_chat_and_asks_again(
            server=server, channel=channel, started=started
        )
    )


async def _withdrawal_closes_the_chat_and_asks_again(server, channel, started):
    from openline.consent.models import ConsentRecord

    comm = await connect(server, channel.code, started[1])
    await ready(comm)
    await comm.send_json_to({"type": "withdraw", "page_url": "https://shop.example/help"})
    withdrawn = await next_of(comm, "withdrawn")
    record = await sync_to_async(ConsentRecord.objects.get)(uuid=withdrawn["record"])
    assert record.state == "withdrawn" and record.method == "withdrawn_by_client"
    conversation = await sync_to_async(Conversation.objects.get)(pk=started[0].conversation.pk)
    assert conversation.status == "closed"
    await comm.send_json_to({"type": "message", "text": "again", "client_id": "again"})
    error = await next_of(comm, "error")
    assert error["code"] == "consent_required" and error["consent"]["html"]
    await comm.disconnect()
