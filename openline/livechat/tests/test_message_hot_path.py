"""A client's message on the hot path: one statement on PostgreSQL, every rule kept on both databases."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from openline.conversations import actions
from openline.conversations.models import Conversation, ConversationStatus, Message
from openline.livechat import flows
from openline.livechat.tests.helpers import consented_visitor

pytestmark = pytest.mark.django_db


def send(channel, visitor, conversation, text="Still there?", client_id="c1", resend=False):
    return flows.visitor_send(
        channel=channel,
        visitor=visitor,
        conversation_id=conversation.pk,
        text=text,
        client_id=client_id,
        resend=resend,
    )


def test_a_message_is_stored_and_noted_as_the_conversations_newest(channel):
    started, _ = consented_visitor(channel, text="Hello")
    conversation = started.conversation
    before = Conversation.objects.get(pk=conversation.pk).unread_count

    with CaptureQueriesContext(connection) as queries:
        message, created = send(channel, started.visitor, conversation, text="x" * 300)

    assert created
    stored = Message.objects.get(pk=message.pk)
    assert (stored.text, stored.client_id, stored.sender) == ("x" * 300, "c1", "visitor")
    assert stored.created_at == message.created_at
    conversation.refresh_from_db()
    assert conversation.unread_count == before + 1
    assert conversation.last_message_at == message.created_at
    assert conversation.last_message_sender == "visitor"
    assert conversation.last_message_preview == "x" * 200
    if connection.vendor == "postgresql":
        # Check, store and note in one statement; the rest is the webhooks' subscription check
        # and the client's name for the inbox row (no lock read, no separate INSERT/UPDATE).
        writes = [q["sql"] for q in queries.captured_queries if "conversations_message" in q["sql"]]
        assert len(writes) == 1 and writes[0].lstrip().startswith("WITH conv AS")
        assert not [q for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]


def test_a_resent_message_is_stored_once_and_counted_once(channel):
    started, _ = consented_visitor(channel, text="Hello")
    conversation = started.conversation
    first, created = send(channel, started.visitor, conversation)
    unread = Conversation.objects.get(pk=conversation.pk).unread_count

    for resend in (True, False):  # a marked resend, and a copy whose first answer was lost
        again, created = send(channel, started.visitor, conversation, resend=resend)
        assert (again.pk, created) == (first.pk, False)

    assert Message.objects.filter(conversation=conversation, client_id="c1").count() == 1
    assert Conversation.objects.get(pk=conversation.pk).unread_count == unread


def test_a_closed_conversation_takes_no_message(channel):
    started, _ = consented_visitor(channel, text="Hello")
    conversation = started.conversation
    actions.close_conversation(conversation=conversation, actor=None, reason="Done")
    count = Message.objects.count()

    with pytest.raises(actions.ActionError) as refused:
        send(channel, started.visitor, conversation)

    assert refused.value.code == "conversation_closed"
    assert Message.objects.count() == count
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED


def test_nobody_writes_into_another_clients_conversation(channel):
    mine, _ = consented_visitor(channel, text="Mine")
    theirs, _ = consented_visitor(channel, text="Theirs")
    before = Conversation.objects.get(pk=theirs.conversation.pk)

    with pytest.raises(actions.ActionError) as refused:
        send(channel, mine.visitor, theirs.conversation)

    assert refused.value.code == "not_found"
    after = Conversation.objects.get(pk=theirs.conversation.pk)
    assert (after.unread_count, after.last_message_preview) == (
        before.unread_count,
        before.last_message_preview,
    )
    assert not Message.objects.filter(conversation=theirs.conversation, client_id="c1").exists()


@pytest.mark.django_db(transaction=True)
def test_a_read_mark_never_overwrites_the_count_of_a_message_committing_meanwhile(
    postgres_only, channel, operator
):
    """The operator reads while a client's message is in flight (its transaction holds the
    conversation's row, as the one-statement path does): the count includes it afterwards."""
    import threading

    import psycopg

    from openline.livechat.message_pg import _table
    from openline.testing.server_process import current_database_url

    started, _ = consented_visitor(channel, text="First")
    conversation = started.conversation
    first = Message.objects.get(conversation=conversation)
    with psycopg.connect(current_database_url()) as other:
        # The client's second message, stored and counted but not committed yet.
        other.execute(
            f"UPDATE {_table(Conversation)} SET unread_count = unread_count + 1 WHERE id = %s",
            [conversation.pk],
        )
        other.execute(
            f"INSERT INTO {_table(Message)} (conversation_id, sender, text, client_id, created_at,"
            " external_id, delivery_state, delivery_error)"
            " VALUES (%s, 'visitor', 'Second', 'second', now(), '', '', '')",
            [conversation.pk],
        )
        done = threading.Event()

        def read() -> None:
            from django.db import connections

            try:
                actions.mark_read(conversation=conversation, reader="operator", up_to=first.pk)
            finally:
                connections.close_all()
                done.set()

        reader = threading.Thread(target=read)
        reader.start()
        done.wait(1.0)  # the read mark waits for the row (or, unfixed, counts without it)
        other.commit()
        reader.join(10)
    conversation.refresh_from_db()
    unread = Message.objects.filter(
        conversation=conversation, sender="visitor", read_at__isnull=True
    ).count()
    assert unread == 1
    assert conversation.unread_count == unread
