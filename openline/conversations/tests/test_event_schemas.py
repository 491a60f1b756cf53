"""Every action publishes exactly the events its schemas describe, to the right audience, after commit.

Each test runs one action through ``verify_action``, which records what reaches the
channel-layer boundary and checks it against ``openline.conversations.event_schemas``
(missing or unknown keys fail); the tests then check what each audience learns.
"""

from __future__ import annotations

import pytest

from openline.conversations import actions, event_schemas, events
from openline.conversations.event_schemas import OPERATORS, VISITOR, SchemaError
from openline.conversations.models import (
    Conversation,
    ConversationStatus,
    DeliveryState,
    Message,
    OutboxItem,
    SenderKind,
    Visitor,
    VisitorOrigin,
)
from openline.conversations.tests.verify_events import verify_action
from openline.livechat import flows
from openline.livechat.tests.helpers import accepted_for, consented_visitor

pytestmark = pytest.mark.django_db

PAGE = "https://shop.example/pricing"


@pytest.fixture
def chat(channel):
    """A live chat client's open conversation with one message waiting."""
    started, _ = consented_visitor(channel, text="Is the team plan monthly?")
    return started.conversation


def _types(events) -> list[str]:
    return [event["type"] for event in events]


# ----- the checker itself ---------------------------------------------------------------


def _message_event(conversation) -> dict:
    message = conversation.messages.get()
    return {
        "type": "message",
        "message": {
            "id": message.id,
            "conversation": conversation.id,
            "client_id": "first",
            "sender": "visitor",
            "author": "",
            "avatar": "",
            "text": message.text,
            "created_at": message.created_at.isoformat(),
            "delivered_at": None,
            "read_at": None,
        },
    }


def test_a_well_formed_event_passes(chat):
    schema = event_schemas.check_event(_message_event(chat), audience=VISITOR)

    assert schema.type == "message"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda e: e["message"].pop("text"), "missing keys ['text']"),
        (lambda e: e["message"].update(secret="x"), "unknown keys ['secret']"),
        (lambda e: e.update(conversation={}), "unknown keys ['conversation']"),
        (lambda e: e["message"].update(id="7"), "message.id: expected int"),
        (lambda e: e["message"].update(id=True), "got a boolean"),
        (lambda e: e["message"].update(sender="robot"), "expected one of"),
        (lambda e: e["message"].update(created_at="2026-01-01T10:00:00"), "has no time zone"),
        (lambda e: e["message"].update(read_at="yesterday"), "is not an ISO timestamp"),
        (lambda e: e.update(type="mesage"), "has no schema"),
    ],
)
def test_a_malformed_event_fails(chat, change, complaint):
    event = _message_event(chat)
    change(event)

    with pytest.raises(SchemaError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        event_schemas.check_event(event, audience=VISITOR)


def test_an_event_for_operators_only_fails_when_sent_to_the_client():
    event = {"type": "conversation.transferred", "conversation": {}, "by": "Otto"}

    with pytest.raises(SchemaError, match="not meant for the visitor"):
        event_schemas.check_event(event, audience=VISITOR)


def test_groups_tell_the_audience():
    visitor = Visitor(channel_id=1, origin=VisitorOrigin.LIVECHAT)

    assert event_schemas.audience_of(events.channel_group(3)) == OPERATORS
    assert event_schemas.audience_of(events.ADMINISTRATORS) == OPERATORS
    assert event_schemas.audience_of(events.visitor_group(visitor)) == VISITOR
    with pytest.raises(SchemaError):
        event_schemas.audience_of("staff.user.1")


def test_a_type_is_described_once():
    other = event_schemas.EventSchema(type="typing", operators=None, visitor=None)

    with pytest.raises(ValueError, match="already has another schema"):
        event_schemas.register(other)


def test_a_payload_must_name_its_type():
    wrong = event_schemas.EventSchema(
        type="example.new",
        operators=event_schemas.Obj({"type": event_schemas.Literal("example.old")}),
        visitor=None,
    )

    with pytest.raises(ValueError, match="must require type"):
        event_schemas.register(wrong)
    assert "example.new" not in event_schemas.EVENT_SCHEMAS


# ----- the conversation actions ------------------------------------------------------------


def test_start_conversation_tells_operators_and_the_client(channel):
    visitor = flows.create_livechat_visitor(channel=channel, language="en", user_agent="test")

    done = verify_action(
        lambda: actions.start_conversation(channel=channel, visitor=visitor, page_url=PAGE),
        expected_types=["conversation.started"],
    )

    (for_operators,) = done.to(OPERATORS)
    (for_client,) = done.to(VISITOR)
    assert for_operators["conversation"]["id"] == done.result.id
    assert for_operators["conversation"]["page_url"] == PAGE
    assert for_operators["conversation"]["last_message_sender"] == ""
    assert for_client["conversation"] == {
        "id": done.result.id,
        "status": ConversationStatus.NEW,
        "closed_reason": "",
    }


def test_receive_message_reaches_both_sides(chat):
    done = verify_action(
        lambda: actions.receive_message(
            conversation=chat, visitor=chat.visitor, text="And yearly?", client_id="c2"
        ),
        expected_types=["message"],
    )

    message, created = done.result
    assert created
    (for_operators,) = done.to(OPERATORS)
    (for_client,) = done.to(VISITOR)
    assert for_operators["message"] == for_client["message"]
    assert for_client["message"]["id"] == message.id
    assert for_operators["conversation"]["unread"] == 2


def test_a_resent_message_publishes_nothing(chat):
    verify_action(
        lambda: actions.receive_message(
            conversation=chat,
            visitor=chat.visitor,
            text="Is the team plan monthly?",
            client_id="first",
        ),
        expected_types=[],
    )


def test_a_refused_reply_publishes_nothing(chat, auditor):
    with pytest.raises(actions.ActionError):
        verify_action(
            lambda: actions.send_reply(conversation=chat, actor=auditor, text="Hi"),
            expected_types=[],
        )


def test_the_first_reply_marks_the_client_read_then_publishes_the_reply(chat, operator):
    done = verify_action(
        lambda: actions.send_reply(conversation=chat, actor=operator, text="Yes, monthly."),
        expected_types=["marks", "message"],
    )

    marks_for_operators, reply_for_operators = done.to(OPERATORS)
    marks_for_client, reply_for_client = done.to(VISITOR)
    assert marks_for_client == {
        "type": "marks",
        "conversation": chat.id,
        "sender": SenderKind.VISITOR,
        "mark": "read",
        "up_to": done.result[0].id,
    }
    # Operators also get the new unread count of the inbox row.
    assert marks_for_operators["conversation_state"]["unread"] == 0
    assert reply_for_client["message"]["author"] == str(operator)
    assert reply_for_operators["conversation"]["status"] == ConversationStatus.OPEN
    assert reply_for_operators["conversation"]["assignee"] == operator.pk


def test_a_reply_in_a_messenger_conversation_is_queued_for_sending(channel, operator):
    visitor = actions.create_visitor(channel=channel, origin=VisitorOrigin.TELEGRAM, language="en")
    # A messenger identity comes from the platform; the inbound actions set it in real use.
    Visitor.objects.filter(pk=visitor.pk).update(external_id="1001")
    conversation = actions.start_conversation(channel=channel, visitor=visitor)

    done = verify_action(
        lambda: actions.send_reply(conversation=conversation, actor=operator, text="Hello!"),
        expected_types=["delivery", "message"],
    )

    message, _ = done.result
    item = OutboxItem.objects.get(message=message)
    assert (item.recipient, item.payload["text"]) == ("1001", "Hello!")
    (delivery,) = done.of_type("delivery")
    assert delivery.audience == OPERATORS
    assert delivery.event["messages"][0]["delivery_state"] == DeliveryState.QUEUED


def test_a_live_chat_reply_is_not_queued(chat, operator):
    verify_action(
        lambda: actions.send_reply(conversation=chat, actor=operator, text="Hi"),
        expected_types=["marks", "message"],
    )

    assert not OutboxItem.objects.exists()


def test_close_tells_both_sides_why(chat, operator):
    done = verify_action(
        lambda: actions.close_conversation(conversation=chat, actor=operator),
        expected_types=["conversation.closed"],
    )

    (for_client,) = done.to(VISITOR)
    assert for_client["conversation"]["status"] == ConversationStatus.CLOSED
    assert for_client["conversation"]["closed_reason"] == "Closed by the operator"


def test_closing_a_closed_conversation_publishes_nothing(chat, operator):
    actions.close_conversation(conversation=chat, actor=operator)

    verify_action(
        lambda: actions.close_conversation(conversation=chat, actor=operator),
        expected_types=[],
    )


def test_transfer_is_told_to_operators_only(chat, administrator, operator):
    done = verify_action(
        lambda: actions.transfer_conversation(
            conversation=chat, actor=administrator, to_user=operator
        ),
        expected_types=["conversation.transferred"],
    )

    assert done.to(VISITOR) == []
    (for_operators,) = done.to(OPERATORS)
    assert for_operators["by"] == str(administrator)
    assert for_operators["conversation"]["assignee_name"] == str(operator)


def test_the_client_marks_replies_delivered(chat, operator):
    reply, _ = actions.send_reply(conversation=chat, actor=operator, text="Yes")

    done = verify_action(
        lambda: actions.mark_delivered(
            conversation=chat, reader=SenderKind.VISITOR, up_to=reply.id
        ),
        expected_types=["marks"],
    )

    assert done.result == 1
    for event in done.to(OPERATORS) + done.to(VISITOR):
        # The operator's own messages: no inbox row to update.
        assert "conversation_state" not in event
        assert (event["sender"], event["mark"]) == (SenderKind.OPERATOR, "delivered")


def test_the_operator_reads_the_client(chat):
    waiting = chat.messages.get()

    done = verify_action(
        lambda: actions.mark_read(conversation=chat, reader=SenderKind.OPERATOR, up_to=waiting.id),
        expected_types=["marks"],
    )

    (for_operators,) = done.to(OPERATORS)
    assert for_operators["conversation_state"]["unread"] == 0
    assert Message.objects.get(pk=waiting.pk).read_at is not None


def test_marking_nothing_new_publishes_nothing(chat):
    waiting = chat.messages.get()
    actions.mark_read(conversation=chat, reader=SenderKind.OPERATOR, up_to=waiting.id)

    verify_action(
        lambda: actions.mark_read(conversation=chat, reader=SenderKind.OPERATOR, up_to=waiting.id),
        expected_types=[],
    )


@pytest.mark.parametrize(
    ("sender", "audience"), [(SenderKind.OPERATOR, VISITOR), (SenderKind.VISITOR, OPERATORS)]
)
def test_typing_reaches_the_other_side_at_once(chat, sender, audience):
    done = verify_action(
        lambda: actions.signal_typing(conversation=chat, sender=sender, name="Otto"),
        expected_types=["typing"],
    )

    (published,) = done.of_type("typing")
    assert published.audience == audience
    # Ephemeral: nothing is stored, so it does not wait for a commit.
    assert published.before_commit
    # Operators' events reach the channel's group and the administrators' one group.
    staff = [p.group for p in done.events if p.audience == OPERATORS]
    assert staff == ([] if audience == VISITOR else events.staff_groups(chat.channel_id))


# ----- the live chat flows -------------------------------------------------------------------


def test_livechat_start_starts_the_chat_and_stores_the_first_message(channel):
    done = verify_action(
        lambda: flows.livechat_start(
            channel=channel,
            visitor=None,
            accepted=accepted_for(channel),
            page_url=PAGE,
            ip="203.0.113.7",
            user_agent="Mozilla/5.0 test",
            language="en",
            text="Hello",
            client_id="first",
        ),
        expected_types=["conversation.started", "message"],
    )

    assert done.result.record is not None
    started, message = done.to(VISITOR)
    assert started["conversation"]["id"] == done.result.conversation.id
    assert message["message"]["text"] == "Hello"


def test_livechat_start_without_consent_publishes_nothing(channel):
    with pytest.raises(actions.ActionError):
        verify_action(
            lambda: flows.livechat_start(
                channel=channel,
                visitor=None,
                accepted=None,
                page_url=PAGE,
                ip="",
                user_agent="",
                language="en",
                text="Hello",
                client_id="first",
            ),
            expected_types=[],
        )
    assert not Conversation.objects.exists()


def test_visitor_send_writes_into_the_open_conversation(chat):
    done = verify_action(
        lambda: flows.visitor_send(
            channel=chat.channel,
            visitor=chat.visitor,
            conversation_id=chat.id,
            text="Still there?",
            client_id="c2",
        ),
        expected_types=["message"],
    )

    assert done.result[1] is True


def test_visitor_send_after_a_close_starts_a_new_conversation(chat, operator):
    actions.close_conversation(conversation=chat, actor=operator)

    done = verify_action(
        lambda: flows.visitor_send(
            channel=chat.channel,
            visitor=chat.visitor,
            conversation_id=None,
            text="One more question",
            client_id="c3",
            page_url=PAGE,
        ),
        expected_types=["conversation.started", "message"],
    )

    started, _ = done.to(OPERATORS)
    assert started["conversation"]["id"] != chat.id


def test_withdrawal_closes_the_open_conversation(chat):
    done = verify_action(
        lambda: flows.withdraw_livechat_consent(
            channel=chat.channel, visitor=chat.visitor, page_url=PAGE, ip="", user_agent=""
        ),
        expected_types=["conversation.closed"],
    )

    (for_client,) = done.to(VISITOR)
    assert for_client["conversation"]["closed_reason"] == "The client withdrew consent"
    assert done.result.state == "withdrawn"
