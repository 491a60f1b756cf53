"""The messenger actions (inbound, outbox) publish exactly their schema'd events, after commit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from openline.consent.services import record_consent
from openline.conversations import inbound, outbox
from openline.conversations.actions import send_reply, start_conversation
from openline.conversations.event_schemas import OPERATORS, VISITOR
from openline.conversations.inbound import ClientRef
from openline.conversations.models import OutboxItem, Visitor
from openline.conversations.tests.inbound_helpers import (
    KIND,
    client_visitor,
    consented,
    receive,
    send_outbox,
)
from openline.conversations.tests.verify_events import verify_action

pytestmark = pytest.mark.django_db


def test_first_message_opens_a_chat_and_queues_the_warning(messenger_channel):
    visitor = client_visitor(messenger_channel)

    done = verify_action(
        lambda: receive(messenger_channel, visitor, "m1", "Здравствуйте"),
        expected_types=["conversation.started", "message", "message", "delivery"],
    )

    # A messenger client has no websocket: messages and marks go to the operators only
    # (start_conversation announces the chat to the client's group as for every face).
    assert [e["type"] for e in done.to(VISITOR)] == ["conversation.started"]
    client_message, warning = (e["message"] for e in done.to(OPERATORS)[1:3])
    assert (client_message["sender"], client_message["text"]) == ("visitor", "Здравствуйте")
    assert warning["sender"] == "system"
    delivery = done.to(OPERATORS)[3]
    assert delivery["messages"] == [
        {
            "id": warning["id"],
            "delivery_state": "queued",
            "delivery_error": "",
            "outbox": OutboxItem.objects.get().pk,
        }
    ]


def test_confirming_message_publishes_only_the_message(messenger_channel):
    visitor = client_visitor(messenger_channel)
    receive(messenger_channel, visitor, "m1")
    send_outbox(visitor)

    done = verify_action(
        lambda: receive(messenger_channel, visitor, "m2"), expected_types=["message"]
    )

    assert done.result.consent == "given"


def test_duplicate_publishes_nothing(messenger_channel):
    visitor = client_visitor(messenger_channel)
    receive(messenger_channel, visitor, "m1")

    done = verify_action(lambda: receive(messenger_channel, visitor, "m1"), expected_types=[])

    assert done.result.duplicate


def test_button_accept_thanks_the_client(buttons_channel):
    visitor = client_visitor(buttons_channel)
    receive(buttons_channel, visitor, "b1")
    send_outbox(visitor)
    pressed = f"consent:accept:{buttons_channel.agreement.current_version.id}"

    done = verify_action(
        lambda: receive(buttons_channel, visitor, "b2", "", button=pressed),
        expected_types=["message", "message", "delivery"],
    )

    assert done.result.consent == "given"


def test_keyword_withdrawal_tells_the_client_and_closes(messenger_channel):
    given = consented(messenger_channel)

    done = verify_action(
        lambda: receive(messenger_channel, given.visitor, "m3", "/stop"),
        expected_types=["message", "message", "delivery", "conversation.closed"],
    )

    closed = done.of_type("conversation.closed")
    assert {p.audience for p in closed} == {OPERATORS, VISITOR}
    assert done.to(OPERATORS)[-1]["conversation"]["closed_reason"] == inbound.WITHDRAWN_REASON


def test_withdrawal_on_request_in_a_messenger(messenger_channel, operator):
    given = consented(messenger_channel)

    verify_action(
        lambda: inbound.withdraw_on_request(actor=operator, conversation=given.conversation),
        expected_types=["message", "delivery", "conversation.closed"],
    )


def test_withdrawal_on_request_in_live_chat_reaches_the_widget(channel, operator):
    visitor = Visitor.objects.create(channel=channel, origin="livechat", language="en")
    conversation = start_conversation(channel=channel, visitor=visitor)
    record_consent(
        visitor=visitor,
        version=channel.agreement.current_version,
        language="en",
        state="given",
        method="clicked_accept",
        origin="livechat",
        source_type="website",
        channel=channel,
        conversation=conversation,
    )

    done = verify_action(
        lambda: inbound.withdraw_on_request(actor=operator, conversation=conversation),
        expected_types=["message", "conversation.closed"],
    )

    told = done.to(VISITOR)
    assert told[0]["message"]["sender"] == "system" and told[1]["type"] == "conversation.closed"


def _sent_reply(conversation, operator) -> OutboxItem:
    message, _ = send_reply(conversation=conversation, actor=operator, text="Завтра")
    item = outbox.claim(item_id=OutboxItem.objects.get(message=message).pk)
    assert item is not None
    return item


def test_sent_and_marks_publish_delivery(messenger_channel, operator):
    chat = consented(messenger_channel).conversation
    item = _sent_reply(chat, operator)

    sent = verify_action(
        lambda: outbox.record_sent(item=item, platform_message_id="77"),
        expected_types=["delivery"],
    )
    read = verify_action(
        lambda: inbound.record_delivery(
            channel=messenger_channel, kind=KIND, platform_message_id="77", state="read"
        ),
        expected_types=["delivery"],
    )
    verify_action(
        lambda: inbound.record_delivery(
            channel=messenger_channel, kind=KIND, platform_message_id="77", state="delivered"
        ),
        expected_types=[],
    )

    assert sent.to(OPERATORS)[0]["messages"][0]["delivery_state"] == "sent"
    assert read.to(OPERATORS)[0]["messages"][0]["delivery_state"] == "read"


def test_failures_stale_sends_and_resends_publish_delivery(messenger_channel, operator):
    chat = consented(messenger_channel).conversation
    retried = _sent_reply(chat, operator)
    verify_action(
        lambda: outbox.record_failure(
            item=retried, error="timeout", permanent=False, retry_after=None
        ),
        expected_types=[],
    )
    failed = verify_action(
        lambda: outbox.record_failure(
            item=retried, error="blocked", permanent=True, retry_after=None
        ),
        expected_types=["delivery"],
    )
    assert failed.to(OPERATORS)[0]["messages"][0]["delivery_error"] == "blocked"

    stale = _sent_reply(chat, operator)
    OutboxItem.objects.filter(pk=stale.pk).update(claimed_at=timezone.now() - timedelta(hours=1))
    reaped = verify_action(lambda: outbox.reap_stale(), expected_types=["delivery"])
    assert reaped.to(OPERATORS)[0]["messages"][0]["delivery_error"] == outbox.UNCERTAIN_NOTE

    again = verify_action(
        lambda: outbox.resend(actor=operator, item=stale), expected_types=["delivery"]
    )
    assert again.to(OPERATORS)[0]["messages"][0]["delivery_state"] == "queued"


def test_blocked_client_note_and_failed_sends(messenger_channel, operator):
    chat = consented(messenger_channel).conversation
    send_reply(conversation=chat, actor=operator, text="Вы тут?")

    done = verify_action(
        lambda: inbound.record_client_event(
            channel=messenger_channel,
            kind=KIND,
            client=ClientRef(external_id="1001"),
            event="unsubscribed",
        ),
        # The warning is already sent; only the queued reply fails.
        expected_types=["message", "delivery"],
    )

    note = done.to(OPERATORS)[0]["message"]
    assert note["sender"] == "system" and note["text"].startswith("The client blocked the bot")
    assert {e["messages"][0]["delivery_state"] for e in done.to(OPERATORS)[1:]} == {"failed"}
