"""Reconnecting widgets: one statement when nothing was missed, every refusal rule kept."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from openline.conversations import actions
from openline.conversations.models import Message, Visitor
from openline.livechat import resume
from openline.livechat.tests.helpers import consented_visitor, run_async
from openline.livechat.tests.test_protocol import connect, next_of, ready
from openline.openchannels.services import set_connector

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def started(channel):
    return consented_visitor(channel)


def _newest_id() -> int:
    return Message.objects.order_by("-id").values_list("id", flat=True)[0]


def test_nothing_missed_costs_one_statement_and_missed_messages_one_more(
    channel, started, operator, django_assert_num_queries
):
    visitor, newest = started[0].visitor, _newest_id()
    with django_assert_num_queries(1):
        loaded = resume.load_visitor(code=channel.code, public_id=visitor.public_id.hex)
        frame = resume.ready_frame(visitor=loaded, last_id=newest, language="en")
    assert frame["messages"] == [] and frame["conversation"]["id"] == started[0].conversation.id
    assert frame["has_consent"] and not frame["consent_required"]
    actions.send_reply(conversation=started[0].conversation, actor=operator, text="Missed me?")
    with django_assert_num_queries(2):
        loaded = resume.load_visitor(code=channel.code, public_id=visitor.public_id.hex)
        frame = resume.ready_frame(visitor=loaded, last_id=newest, language="en")
    assert [m["text"] for m in frame["messages"]] == ["Missed me?"]


def test_a_fresh_page_gets_the_history(channel, started):
    visitor = started[0].visitor
    loaded = resume.load_visitor(code=channel.code, public_id=visitor.public_id.hex)
    frame = resume.ready_frame(visitor=loaded, last_id=0, language="en")
    assert [m["text"] for m in frame["messages"]] == ["Hello"]


def test_erased_visitors_disabled_connectors_and_inactive_channels_are_refused(
    live_asgi, channel, started, administrator
):
    visitor, token = started[0].visitor, started[1]

    async def refused() -> int | None:
        comm = await connect(live_asgi, channel.code, token)
        return await comm.close_code()

    set_connector(actor=administrator, channel=channel, kind="livechat", is_enabled=False)
    assert run_async(refused) == 4401
    set_connector(actor=administrator, channel=channel, kind="livechat", is_enabled=True)
    type(channel).objects.filter(pk=channel.pk).update(is_active=False)
    assert run_async(refused) == 4401
    type(channel).objects.filter(pk=channel.pk).update(is_active=True)
    Visitor.objects.filter(pk=visitor.pk).update(erased_at=timezone.now())
    assert run_async(refused) == 4401
    assert resume.load_visitor(code=channel.code, public_id=visitor.public_id.hex) is None
    assert resume.load_visitor(code=channel.code, public_id="not-hex") is None


def test_last_seen_is_written_in_a_batch_after_the_connection(live_asgi, channel, started):
    visitor, token = started[0].visitor, started[1]
    long_ago = timezone.now() - timedelta(days=1)
    Visitor.objects.filter(pk=visitor.pk).update(last_seen_at=long_ago)
    newest = _newest_id()

    async def body() -> None:
        comm = await connect(live_asgi, channel.code, token, last_id=newest)
        frame = await ready(comm)
        assert frame["messages"] == []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen = await sync_to_async(
                lambda: Visitor.objects.values_list("last_seen_at", flat=True).get(pk=visitor.pk)
            )()
            if seen > long_ago:
                break
            await asyncio.sleep(0.2)
        await comm.disconnect()
        assert seen > long_ago

    run_async(body)


def test_a_reply_committed_while_the_ready_frame_is_read_still_reaches_the_widget(
    live_asgi, channel, started, operator, monkeypatch
):
    """The visitor's group is joined before the read, so nothing falls between the two."""
    from openline.livechat.consumers import VisitorConsumer

    conversation, token = started[0].conversation, started[1]
    newest = _newest_id()
    original = VisitorConsumer._load

    async def load_then_reply(self, public_id, last_id):
        frame = await original(self, public_id, last_id)
        # The operator answers right after the read, before the ready frame goes out.
        await sync_to_async(actions.send_reply)(
            conversation=conversation, actor=operator, text="Answered during your reconnect"
        )
        return frame

    monkeypatch.setattr(VisitorConsumer, "_load", load_then_reply)

    async def body() -> list[dict]:
        comm = await connect(live_asgi, channel.code, token, last_id=newest)
        frame = await ready(comm)
        assert frame["messages"] == []  # read before the reply was stored
        event = await next_of(comm, "message")
        await comm.disconnect()
        return [frame, event]

    _, event = run_async(body)
    assert event["message"]["text"] == "Answered during your reconnect"


def test_deleting_the_clients_data_closes_their_open_widget(
    live_asgi, channel, started, administrator
):
    from openline.conversations.erasure import erase_visitor

    visitor, token = started[0].visitor, started[1]

    async def body() -> int | None:
        comm = await connect(live_asgi, channel.code, token, last_id=0)
        await ready(comm)
        await sync_to_async(erase_visitor)(actor=administrator, visitor=visitor)
        return await comm.close_code()

    assert run_async(body) == 4401
