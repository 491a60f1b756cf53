"""A client's message in one autocommit statement from the event loop (PostgreSQL).

The ORM path (``flows.visitor_send``) is the definition: the statement must leave the same rows
(message, conversation, webhook event and deliveries), publish the same events and answer the
sender the same way; whenever it stores nothing, the ORM path runs and tells why.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from openline.conversations import actions, events
from openline.conversations.models import Conversation, Message
from openline.core import pgasync, unavailable
from openline.crm.models import CrmItem, CrmVisitor
from openline.livechat import flows, message_pg
from openline.livechat.tests.helpers import consented_visitor, run_async
from openline.webhooks import outbox
from openline.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "Is the team plan billed monthly? " * 8  # longer than the 200-character preview


@pytest.fixture
def endpoints(postgres_only):
    subscribed = WebhookEndpoint.objects.create(
        url="https://hooks.example/a", events=["message.received"], secret_encrypted="x"
    )
    WebhookEndpoint.objects.create(
        url="https://hooks.example/b", events=["consent.given"], secret_encrypted="x"
    )
    WebhookEndpoint.objects.create(
        url="https://hooks.example/c",
        events=["message.received"],
        secret_encrypted="x",
        is_active=False,
    )
    also = WebhookEndpoint.objects.create(
        url="https://hooks.example/d",
        events=["conversation.closed", "message.received"],
        secret_encrypted="x",
    )
    return [subscribed, also]


@pytest.fixture
def published(monkeypatch):
    """Every send_now call: (groups, the answered socket's channel name or "")."""
    calls: list = []
    monkeypatch.setattr(
        events,
        "send_now",
        lambda groups, answer=None: calls.append((groups, answer.channel_name if answer else "")),
    )
    return calls


def _client(channel, operator, name="Jane Client"):
    started, _ = consented_visitor(channel, text="Hello")
    Conversation.objects.filter(pk=started.conversation.pk).update(assignee=operator)
    item = CrmItem.objects.create(name=name, source_channel=channel)
    CrmVisitor.objects.create(item=item, visitor=started.visitor)
    return started


def _fast(**kwargs):
    async def body():
        try:
            await message_pg.learn_endpoints()
            answer = events.Answer("sender")
            message = await message_pg.send(answer=answer, **kwargs)
            return message, answer
        finally:
            await pgasync.close()

    return run_async(body)


def _orm(**kwargs):
    answer = events.Answer("sender")
    token = events.SENDER.set(answer)
    try:
        message, created = flows.visitor_send(**kwargs)
    finally:
        events.SENDER.reset(token)
    return message, answer


def _row(obj, *skip) -> dict:
    return {
        f.attname: getattr(obj, f.attname)
        for f in type(obj)._meta.concrete_fields
        if f.attname not in {"id", *skip}
    }


def _outbox(message) -> tuple[dict, list[dict], WebhookEvent]:
    conversation_id = message.conversation_id
    [event] = WebhookEvent.objects.filter(payload__data__message_id=message.pk)
    payload = json.loads(json.dumps(event.payload))
    for key in ("message_id", "conversation_id", "created_at"):
        payload["data"].pop(key)
    payload.pop("timestamp")
    deliveries = [
        _row(d, "event_id", "message_id", "next_attempt_at", "created_at")
        for d in WebhookDelivery.objects.filter(event=event).order_by("id")
    ]
    for delivery in deliveries:
        delivery["order_key"] = delivery["order_key"].replace(f":{conversation_id}", ":C")
    return {"type": event.type, "payload": payload}, deliveries, event


def _neutral(event: dict) -> dict:
    """An event without what differs between two clients (ids, times, the pseudonym)."""
    event = json.loads(json.dumps(event))
    message = event["message"]
    for key in ("id", "conversation", "created_at"):
        message.pop(key)
    if "conversation" in event:
        for key in ("id", "visitor_pseudonym", "last_message_at"):
            event["conversation"].pop(key)
    return event


def test_the_statement_writes_and_publishes_what_the_orm_path_does(
    endpoints, channel, operator, published
):
    orm_client = _client(channel, operator)
    fast_client = _client(channel, operator)
    send = {"channel": channel, "text": TEXT, "client_id": "c-1"}
    published.clear()

    orm_message, orm_answer = _orm(
        visitor=orm_client.visitor, conversation_id=orm_client.conversation.pk, **send
    )
    orm_published = list(published)
    published.clear()
    fast_message, fast_answer = _fast(
        visitor=fast_client.visitor, conversation_id=fast_client.conversation.pk, **send
    )
    fast_published = list(published)

    assert fast_message is not None and fast_message.pk > orm_message.pk
    # The same rows, but for ids and times.
    orm_row = Message.objects.get(pk=orm_message.pk)
    fast_row = Message.objects.get(pk=fast_message.pk)
    assert _row(fast_row, "conversation_id", "created_at") == _row(
        orm_row, "conversation_id", "created_at"
    )
    assert fast_row.created_at == fast_message.created_at
    orm_conversation = Conversation.objects.get(pk=orm_client.conversation.pk)
    fast_conversation = Conversation.objects.get(pk=fast_client.conversation.pk)
    times = ("visitor_id", "started_at", "last_message_at")
    assert _row(fast_conversation, *times) == _row(orm_conversation, *times)
    assert fast_conversation.last_message_at == fast_row.created_at
    assert fast_conversation.unread_count == 2
    assert fast_conversation.last_message_preview == TEXT[:200]

    # The same outbox rows: one event, one delivery per subscribed active endpoint, in order.
    orm_event, orm_deliveries, _ = _outbox(orm_message)
    fast_event, fast_deliveries, event = _outbox(fast_message)
    assert fast_event == orm_event
    assert fast_deliveries == orm_deliveries
    assert [d["endpoint_id"] for d in fast_deliveries] == [e.pk for e in endpoints]
    assert event.payload["data"]["message_id"] == fast_message.pk
    assert event.payload["data"]["created_at"].startswith(fast_row.created_at.strftime("%Y-%m-%d"))
    assert sorted(
        WebhookDelivery.objects.filter(event=event).values_list("message_id", flat=True)
    ) == sorted(outbox.message_id(event.uuid, e.pk) for e in endpoints)

    # The same events to the same groups, the sender answered directly, the CRM's name shown.
    assert [sender for _, sender in fast_published] == [sender for _, sender in orm_published]
    orm_groups, _ = orm_published[0]
    fast_groups, _ = fast_published[0]
    assert [g for g, _ in fast_groups[:-1]] == [g for g, _ in orm_groups[:-1]]
    assert fast_groups[-1][0] == events.visitor_group(fast_client.visitor)
    assert [_neutral(e) for _, e in fast_groups] == [_neutral(e) for _, e in orm_groups]
    assert fast_groups[0][1]["conversation"]["visitor"] == "Jane Client"
    assert fast_groups[0][1]["conversation"]["assignee_name"] == str(operator)
    assert fast_groups[0][1]["message"]["id"] == fast_message.pk
    assert [(kind, _neutral(json.loads(text))) for kind, text in fast_answer.events] == [
        (kind, _neutral(json.loads(text))) for kind, text in orm_answer.events
    ]


def test_an_endpoint_the_process_does_not_know_yet_sends_the_message_down_the_orm_path(
    postgres_only, channel, operator, published
):
    started = _client(channel, operator)
    published.clear()

    async def body():
        try:
            await message_pg.learn_endpoints()  # no endpoint yet
            await asyncio.to_thread(
                lambda: WebhookEndpoint.objects.create(
                    url="https://hooks.example/new",
                    events=["message.received"],
                    secret_encrypted="x",
                )
            )
            return await message_pg.send(
                channel=channel,
                visitor=started.visitor,
                conversation_id=started.conversation.pk,
                text="Anyone?",
                client_id="c-2",
                answer=events.Answer("sender"),
            )
        finally:
            await pgasync.close()

    assert run_async(body) is None
    assert not Message.objects.filter(client_id="c-2").exists()
    assert not published


@pytest.mark.parametrize("case", ["closed", "resent", "someone_elses"])
def test_what_the_statement_does_not_store_the_orm_path_explains(
    postgres_only, channel, operator, published, case
):
    started = _client(channel, operator)
    conversation = started.conversation
    visitor = started.visitor
    if case == "closed":
        actions.close_conversation(conversation=conversation, actor=None, reason="Done")
    elif case == "resent":
        flows.visitor_send(
            channel=channel,
            visitor=visitor,
            conversation_id=conversation.pk,
            text="Hi",
            client_id="c-3",
        )
    else:
        visitor = _client(channel, operator).visitor
    before = (Message.objects.count(), WebhookEvent.objects.count())
    published.clear()

    fast, _ = _fast(
        channel=channel,
        visitor=visitor,
        conversation_id=conversation.pk,
        text="Hi",
        client_id="c-3",
    )

    assert fast is None
    assert (Message.objects.count(), WebhookEvent.objects.count()) == before
    assert not published
    expected = {"closed": "conversation_closed", "someone_elses": "not_found"}
    if case in expected:
        with pytest.raises(actions.ActionError) as refused:
            flows.visitor_send(
                channel=channel,
                visitor=visitor,
                conversation_id=conversation.pk,
                text="Hi",
                client_id="c-3",
            )
        assert refused.value.code == expected[case]
    else:
        stored, created = flows.visitor_send(
            channel=channel,
            visitor=visitor,
            conversation_id=conversation.pk,
            text="Hi",
            client_id="c-3",
        )
        assert not created and stored.client_id == "c-3"


def _frame(channel, started, text: str, client_id: str) -> dict:
    """A client's message frame in the started conversation, as the consumer passes it on."""
    return {
        "channel": channel,
        "visitor": started.visitor,
        "conversation_id": started.conversation.pk,
        "text": text,
        "client_id": client_id,
    }


def test_two_copies_of_one_frame_at_once_store_one_message(
    postgres_only, channel, operator, published
):
    started = _client(channel, operator)
    kwargs = _frame(channel, started, "Only once", "c-4")

    async def body():
        try:
            return await asyncio.gather(
                *(message_pg.send(answer=events.Answer(f"s{n}"), **kwargs) for n in range(6))
            )
        finally:
            await pgasync.close()

    results = run_async(body)
    stored = [m for m in results if m is not None]
    assert len(stored) == 1  # the others store nothing and take the ORM path
    assert Message.objects.filter(client_id="c-4").count() == 1
    again, created = flows.visitor_send(**kwargs)
    assert (again.pk, created) == (stored[0].pk, False)
    assert Conversation.objects.get(pk=started.conversation.pk).unread_count == 2


def test_an_unreachable_database_is_an_outage_not_a_crash(
    postgres_only, channel, operator, monkeypatch
):
    started = _client(channel, operator)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(pgasync, "conninfo", lambda: f"host=127.0.0.1 port={port} dbname=x user=x")
    monkeypatch.setattr(pgasync, "TIMEOUT", 0.5)

    async def body():
        try:
            await message_pg.send(
                channel=channel,
                visitor=started.visitor,
                conversation_id=started.conversation.pk,
                text="Lost?",
                client_id="c-5",
                answer=events.Answer("sender"),
            )
        finally:
            await pgasync.close()

    with pytest.raises(Exception) as failed:  # noqa: PT011 - the type is what is checked below
        run_async(body)
    assert unavailable.classify(failed.value) == unavailable.DOWN
    assert not Message.objects.filter(client_id="c-5").exists()


def test_an_erased_clients_open_socket_stores_nothing_more(
    postgres_only, channel, operator, administrator, published
):
    from django.utils import timezone

    from openline.conversations.erasure import erase_visitor
    from openline.conversations.models import Visitor

    started = _client(channel, operator)
    visitor, conversation = started.visitor, started.conversation
    # The socket still holds the visitor object it loaded before the erasure.
    Visitor.objects.filter(pk=visitor.pk).update(erased_at=timezone.now())
    before = Message.objects.count()
    fast, _ = _fast(
        channel=channel, visitor=visitor, conversation_id=conversation.pk, text="Hi", client_id="e1"
    )
    assert fast is None and Message.objects.count() == before
    erase_visitor(actor=administrator, visitor=visitor)
    _orm_refuses_as_not_found(channel, visitor, conversation)
    assert not Message.objects.filter(conversation__visitor=visitor).exists()
    assert Conversation.objects.filter(visitor=visitor).count() == 1


def _orm_refuses_as_not_found(channel, visitor, conversation) -> None:
    """The ORM path refuses the socket's message, into its conversation or a new one."""
    for conversation_id in (conversation.pk, None):
        with pytest.raises(actions.ActionError) as refused:
            flows.visitor_send(
                channel=channel,
                visitor=visitor,
                conversation_id=conversation_id,
                text="Still here?",
                client_id="late",
            )
        assert refused.value.code == "not_found"


@pytest.mark.parametrize("how", ["deactivated", "live_chat_off"])
def test_a_socket_open_when_its_channel_closed_stores_nothing_more(
    postgres_only, channel, operator, administrator, published, how
):
    from openline.openchannels import services

    started = _client(channel, operator)
    visitor, conversation = started.visitor, started.conversation
    # The socket still holds the channel object it loaded before.
    if how == "deactivated":
        services.set_channel_active(actor=administrator, channel=channel, is_active=False)
    else:
        services.set_connector(
            actor=administrator, channel=channel, kind="livechat", is_enabled=False
        )
    channel.refresh_from_db()
    channel.is_active = True
    before = Message.objects.count()
    published.clear()
    fast, _ = _fast(
        channel=channel, visitor=visitor, conversation_id=conversation.pk, text="Hi", client_id="d1"
    )
    assert fast is None and Message.objects.count() == before and not published
    _orm_refuses_as_not_found(channel, visitor, conversation)
    assert Message.objects.count() == before
    assert Conversation.objects.filter(visitor=visitor).count() == 1


def test_a_conversation_locked_elsewhere_sends_the_message_down_the_orm_path(
    postgres_only, channel, operator, published, monkeypatch
):
    import psycopg

    started = _client(channel, operator)
    frame = _frame(channel, started, "Waiting for the lock", "lock-1")
    monkeypatch.setattr(pgasync, "LOCK_TIMEOUT_MS", 200)
    with psycopg.connect(pgasync.conninfo()) as holder:
        holder.execute(
            "SELECT id FROM conversations_conversation WHERE id = %s FOR UPDATE",
            [started.conversation.pk],
        )
        fast, _ = _fast(**frame)
        holder.rollback()
    assert fast is None
    assert not Message.objects.filter(client_id="lock-1").exists()
    message, _ = _orm(**frame)
    assert message.pk and Message.objects.filter(client_id="lock-1").count() == 1
