"""The resume from the event loop (PostgreSQL, core.pgasync) reads what the ORM path reads.

A reconnecting widget on PostgreSQL is looked up by ``resume_pg.aload_visitor`` (the statement
for many widgets at once, prepared on the loop's pool); ``resume.load_visitor`` on Django's
connection stays the path on SQLite and for ``sync`` frames. Both must build the same visitor,
channel and annotations, and so the same ``ready`` frame, in every state a returning widget can
be in, alone or in a batch.
"""

from __future__ import annotations

import asyncio

import pytest
from django.db import connection
from django.utils import timezone

from openline.consent.services import update_agreement
from openline.conversations import actions
from openline.conversations.models import Message, Visitor
from openline.core import pgasync
from openline.livechat import resume, resume_pg, tokens
from openline.livechat.tests.helpers import consented_visitor, run_async
from openline.openchannels.services import set_connector

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the event loop's path is PostgreSQL's"
    ),
]


def _state(visitor: Visitor | None) -> dict | None:
    """Every column of the visitor and its channel, and every annotation the resume reads."""
    if visitor is None:
        return None
    fields = {f"visitor.{f.attname}": getattr(visitor, f.attname) for f in Visitor._meta.fields}
    channel = visitor.channel
    fields |= {f"channel.{f.attname}": getattr(channel, f.attname) for f in channel._meta.fields}
    return fields | {name: getattr(visitor, name) for name in resume.EXTRA}


def _both(code: str, public_id: str) -> tuple[Visitor | None, Visitor | None]:
    orm = resume.load_visitor(code=code, public_id=public_id)

    async def from_loop():
        try:
            return await resume_pg.aload_visitor(code=code, public_id=public_id)
        finally:
            await pgasync.close()

    return orm, run_async(from_loop)


def _frame(visitor: Visitor, last_id: int) -> dict:
    frame = resume.ready_frame(visitor=visitor, last_id=last_id, language="en")
    # The fresh token is signed with the time: compare whom it names.
    frame["token"] = tokens.read_token(frame["token"], channel_code=visitor.channel.code)
    return frame


def _same(code: str, visitor: Visitor, last_id: int) -> dict:
    orm, loop = _both(code, visitor.public_id.hex)
    assert orm is not None and loop is not None
    assert _state(loop) == _state(orm)
    frame = _frame(loop, last_id)
    assert frame == _frame(orm, last_id)
    return frame


def _newest() -> int:
    return Message.objects.order_by("-id").values_list("id", flat=True)[0]


def test_nothing_missed_needs_no_query_beyond_the_row(channel, django_assert_num_queries):
    started, _ = consented_visitor(channel)
    newest = _newest()
    frame = _same(channel.code, started.visitor, newest)
    assert frame["messages"] == [] and frame["has_consent"] and not frame["consent_required"]
    _, loop = _both(channel.code, started.visitor.public_id.hex)
    assert loop is not None and not resume.needs_queries(loop, newest)
    with django_assert_num_queries(0):
        resume.ready_frame(visitor=loop, last_id=newest, language="en")


def test_missed_replies_and_a_fresh_page(channel, operator):
    started, _ = consented_visitor(channel)
    newest = _newest()
    actions.send_reply(conversation=started.conversation, actor=operator, text="Missed me?")
    frame = _same(channel.code, started.visitor, newest)
    assert [m["text"] for m in frame["messages"]] == ["Missed me?"]
    frame = _same(channel.code, started.visitor, 0)
    assert [m["text"] for m in frame["messages"]] == ["Hello", "Missed me?"]
    _, loop = _both(channel.code, started.visitor.public_id.hex)
    assert loop is not None and resume.needs_queries(loop, newest)


def test_a_changed_consent_and_working_hours(channel, administrator, agreement):
    started, _ = consented_visitor(channel)
    type(channel).objects.filter(pk=channel.pk).update(
        hours_enabled=True,
        hours_timezone="Europe/Berlin",
        working_hours=[[["09:00", "17:00"]]] * 5 + [[], []],
    )
    update_agreement(actor=administrator, agreement=agreement, texts={"en": "New wording."})
    frame = _same(channel.code, started.visitor, _newest())
    assert frame["consent_required"] and frame["consent_changed"]
    assert frame["hours"]["enabled"] is True


def test_refused_visitors_are_refused_on_both_paths(channel, administrator):
    started, _ = consented_visitor(channel)
    visitor = started.visitor
    set_connector(actor=administrator, channel=channel, kind="livechat", is_enabled=False)
    assert _both(channel.code, visitor.public_id.hex) == (None, None)
    set_connector(actor=administrator, channel=channel, kind="livechat", is_enabled=True)
    assert _both("another-code", visitor.public_id.hex) == (None, None)
    assert _both(channel.code, "not-hex") == (None, None)
    Visitor.objects.filter(pk=visitor.pk).update(erased_at=timezone.now())
    assert _both(channel.code, visitor.public_id.hex) == (None, None)


def test_many_widgets_at_once_each_get_their_own_answer_in_few_statements(
    channel, administrator, agreement, monkeypatch
):
    from openline.openchannels.services import create_open_channel

    other = create_open_channel(
        actor=administrator,
        name="Other site",
        operators=[],
        connectors=["livechat"],
        consent_enabled=True,
        agreement=agreement,
    )
    visitors = [consented_visitor(channel, client_id=f"c{i}")[0].visitor for i in range(12)]
    elsewhere = consented_visitor(other, client_id="o1")[0].visitor
    Visitor.objects.filter(pk=visitors[3].pk).update(erased_at=timezone.now())
    asks = [(channel.code, v.public_id.hex) for v in visitors]
    asks += [(other.code, elsewhere.public_id.hex), (channel.code, elsewhere.public_id.hex)]
    asks += [(channel.code, "not-hex"), (channel.code, visitors[0].public_id.hex)]
    statements = []
    select = resume_pg._select

    async def counted(code, keys):
        statements.append((code, len(keys)))
        return await select(code, keys)

    monkeypatch.setattr(resume_pg, "_select", counted)

    async def from_loop():
        try:
            return await asyncio.gather(
                *(resume_pg.aload_visitor(code=code, public_id=hex_id) for code, hex_id in asks)
            )
        finally:
            await pgasync.close()

    loaded = run_async(from_loop)
    expected = [_state(resume.load_visitor(code=code, public_id=hex_id)) for code, hex_id in asks]
    assert [_state(v) for v in loaded] == expected
    assert expected[3] is None and expected[13] is None and expected[14] is None
    assert expected[0] is not None and expected[12] is not None
    # One statement per channel asked for; the same widget twice is two instances.
    assert sorted(statements) == sorted([(channel.code, 13), (other.code, 1)])
    assert loaded[0] is not loaded[15]


def test_a_refused_batch_sends_its_widgets_to_read_alone_and_a_bad_row_fails_only_its_own(
    channel, monkeypatch
):
    import psycopg

    visitors = [consented_visitor(channel, client_id=f"r{i}")[0].visitor for i in range(4)]
    select = resume_pg._select
    calls = []

    async def refused_once(code, keys):
        calls.append(len(keys))
        if len(calls) == 1:
            raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
        return await select(code, keys)

    monkeypatch.setattr(resume_pg, "_select", refused_once)
    convert = resume.visitor_from_row
    bad = visitors[1].public_id

    def fails_for_one(row):
        if row[resume.PUBLIC_ID_COLUMN] == bad:
            raise ValueError("a row this process cannot read")
        return convert(row)

    async def from_loop(hex_ids):
        try:
            return await asyncio.gather(
                *(resume_pg.aload_visitor(code=channel.code, public_id=h) for h in hex_ids),
                return_exceptions=True,
            )
        finally:
            await pgasync.close()

    hex_ids = [v.public_id.hex for v in visitors]
    first = run_async(lambda: from_loop(hex_ids))
    assert all(isinstance(answer, resume_pg.ReadAlone) for answer in first)
    monkeypatch.setattr(resume, "visitor_from_row", fails_for_one)
    second = run_async(lambda: from_loop(hex_ids))
    assert isinstance(second[1], ValueError)
    assert [v.pk for i, v in enumerate(second) if i != 1] == [
        v.pk for i, v in enumerate(visitors) if i != 1
    ]


def test_a_widget_whose_batch_was_refused_still_gets_its_ready_frame(
    live_asgi, channel, monkeypatch
):
    import psycopg

    from openline.livechat.tests.helpers import WsClient

    started, token = consented_visitor(channel)

    async def refused(code, keys):
        raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")

    monkeypatch.setattr(resume_pg, "_select", refused)

    async def connect():
        comm = await WsClient.open(live_asgi, f"/ws/widget/{channel.code}/")
        await comm.send_json_to({"type": "auth", "token": token, "last_id": 0})
        frame = await comm.receive_json_from(timeout=10)
        await comm.disconnect()
        return frame

    frame = run_async(connect)
    assert frame["type"] == "ready" and frame["conversation"]["id"] == started.conversation.pk


def test_only_an_outage_is_every_widgets_error_anything_else_sends_them_to_read_alone():
    import psycopg
    from psycopg_pool import PoolTimeout

    assert resume_pg.outage(psycopg.OperationalError("server closed the connection"))
    assert resume_pg.outage(PoolTimeout("no connection in 2 s"))
    assert resume_pg.outage(psycopg.errors.AdminShutdown("terminating connection"))
    assert not resume_pg.outage(psycopg.errors.LockNotAvailable("lock timeout"))
    assert not resume_pg.outage(psycopg.errors.QueryCanceled("statement timeout"))
    assert not resume_pg.outage(psycopg.errors.SerializationFailure("could not serialize"))
