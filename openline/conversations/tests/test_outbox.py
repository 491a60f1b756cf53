"""The outbox: sends queued in the caller's transaction, claimed once, retried, marked."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from openline.conversations import inbound, outbox
from openline.conversations.actions import ActionError, send_reply
from openline.conversations.inbound import ClientRef
from openline.conversations.models import Message, OutboxItem
from openline.conversations.tests.inbound_helpers import (
    KIND,
    client_visitor,
    consented,
    receive,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(messenger_channel):
    """Ivan has consented; his conversation is open; the warning is already sent."""
    given = consented(messenger_channel)
    for item in OutboxItem.objects.filter(state="pending"):
        claimed = outbox.claim(item_id=item.pk)
        outbox.record_sent(item=claimed, platform_message_id=f"warn-{item.pk}")
    return given.conversation


def _reply(chat, operator, text="Доставка завтра") -> OutboxItem:
    message, _ = send_reply(conversation=chat, actor=operator, text=text)
    return OutboxItem.objects.get(message=message)


def test_reply_is_queued_with_its_message_and_dispatched_after_commit(
    chat, operator, django_capture_on_commit_callbacks
):
    kicked: list[int] = []
    outbox.register_dispatcher(kicked.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            item = _reply(chat, operator)
    finally:
        outbox._dispatchers.remove(kicked.append)

    assert kicked == [item.pk]
    assert (item.kind, item.recipient, item.state) == (KIND, "1001", "pending")
    assert item.payload == {"text": "Доставка завтра", "buttons": []}
    assert item.message.sender == "operator" and item.message.delivery_state == "queued"
    assert outbox.due_items() == [item.pk]


def test_live_chat_replies_need_no_outbox(channel, operator):
    from openline.conversations.actions import start_conversation
    from openline.conversations.models import Visitor

    visitor = Visitor.objects.create(channel=channel, origin="livechat")
    conversation = start_conversation(channel=channel, visitor=visitor)
    message, _ = send_reply(conversation=conversation, actor=operator, text="Hi")

    assert outbox.enqueue_reply(message=message) is None
    assert not OutboxItem.objects.exists()


def test_claim_takes_an_item_once(chat, operator):
    item = _reply(chat, operator)

    claimed = outbox.claim(item_id=item.pk)
    again = outbox.claim(item_id=item.pk)

    assert claimed is not None and again is None
    assert (claimed.state, claimed.attempts) == ("sending", 1)
    assert claimed.claimed_at is not None
    assert outbox.due_items() == []


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_claim_one_item(postgres_only, chat, operator):
    item = _reply(chat, operator)
    barrier = threading.Barrier(4)
    won, errors = [], []

    def worker():
        try:
            barrier.wait(timeout=10)
            if outbox.claim(item_id=item.pk) is not None:
                won.append(1)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == [] and won == [1]
    item.refresh_from_db()
    assert (item.state, item.attempts) == ("sending", 1)


def test_sent_then_marks_only_move_forward(chat, operator):
    item = outbox.claim(item_id=_reply(chat, operator).pk)
    outbox.record_sent(item=item, platform_message_id="555")
    message = Message.objects.get(pk=item.message_id)
    assert (message.delivery_state, message.external_id) == ("sent", "555")

    channel = chat.channel
    assert (
        inbound.record_delivery(channel=channel, kind=KIND, platform_message_id="555", state="read")
        == 1
    )
    late = inbound.record_delivery(
        channel=channel, kind=KIND, platform_message_id="555", state="delivered"
    )

    message.refresh_from_db()
    assert late == 0
    assert message.delivery_state == "read"
    assert message.read_at is not None and message.delivered_at is not None
    # Unknown ids and other platforms match nothing.
    assert (
        inbound.record_delivery(channel=channel, kind=KIND, platform_message_id="9", state="read")
        == 0
    )
    assert (
        inbound.record_delivery(
            channel=channel, kind="viber", platform_message_id="555", state="read"
        )
        == 0
    )


def test_watermark_marks_everything_sent_up_to_it(chat, operator):
    items = [outbox.claim(item_id=_reply(chat, operator, f"Ответ {n}").pk) for n in range(3)]
    for n, item in enumerate(items[:2]):
        outbox.record_sent(item=item, platform_message_id=f"mid.{n}")
    # The third is still being sent: a watermark cannot have seen it.
    changed = inbound.record_delivery(
        channel=chat.channel,
        kind=KIND,
        platform_message_id="",
        state="delivered",
        watermark=int((timezone.now() + timedelta(seconds=1)).timestamp() * 1000),
        client_external_id="1001",
    )

    states = [Message.objects.get(pk=i.message_id).delivery_state for i in items]
    # The two replies and the earlier consent warning (sent in the fixture).
    assert changed == 3
    assert states == ["delivered", "delivered", "queued"]


def test_failures_back_off_and_honour_retry_after(chat, operator):
    item = outbox.claim(item_id=_reply(chat, operator).pk)
    before = timezone.now()

    retry_at = outbox.record_failure(
        item=item, error="timed out", permanent=False, retry_after=None
    )
    assert retry_at is not None
    assert timedelta(seconds=1.5) < retry_at - before < timedelta(seconds=3)
    item.refresh_from_db()
    assert (item.state, item.last_error) == ("pending", "timed out")
    assert outbox.claim(item_id=item.pk) is None  # not due yet

    OutboxItem.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
    item = outbox.claim(item_id=item.pk)
    retry_at = outbox.record_failure(
        item=item, error="429 Too Many Requests", permanent=False, retry_after=37
    )
    assert retry_at - timezone.now() > timedelta(seconds=35)
    assert outbox.backoff(20, None) == outbox.MAX_DELAY
    assert Message.objects.get(pk=item.message_id).delivery_state == "queued"


def test_gives_up_after_the_last_attempt(chat, operator):
    item = _reply(chat, operator)
    OutboxItem.objects.filter(pk=item.pk).update(attempts=outbox.MAX_ATTEMPTS - 1)
    item = outbox.claim(item_id=item.pk)

    assert (
        outbox.record_failure(item=item, error="timed out", permanent=False, retry_after=1) is None
    )

    item.refresh_from_db()
    assert (item.state, item.permanent) == ("failed", False)
    message = Message.objects.get(pk=item.message_id)
    assert (message.delivery_state, message.delivery_error) == ("failed", "timed out")


def test_permanent_failure_is_shown_on_the_message(chat, operator):
    item = outbox.claim(item_id=_reply(chat, operator).pk)

    outbox.record_failure(
        item=item, error="Forbidden: bot was blocked by the user", permanent=True, retry_after=None
    )

    item.refresh_from_db()
    assert (item.state, item.permanent, item.attempts) == ("failed", True, 1)
    message = Message.objects.get(pk=item.message_id)
    assert message.delivery_state == "failed"
    assert message.delivery_error == "Forbidden: bot was blocked by the user"
    assert outbox.due_items() == []


def test_stale_send_becomes_uncertain_and_is_never_resent(chat, operator):
    item = outbox.claim(item_id=_reply(chat, operator).pk)
    OutboxItem.objects.filter(pk=item.pk).update(claimed_at=timezone.now() - timedelta(minutes=5))
    fresh = outbox.claim(item_id=_reply(chat, operator, "Ещё").pk)

    assert outbox.reap_stale(older_than_seconds=120) == 1

    item.refresh_from_db()
    fresh.refresh_from_db()
    assert item.state == "uncertain" and fresh.state == "sending"
    message = Message.objects.get(pk=item.message_id)
    assert (message.delivery_state, message.delivery_error) == ("failed", outbox.UNCERTAIN_NOTE)
    assert outbox.due_items() == [] and outbox.claim(item_id=item.pk) is None
    assert outbox.reap_stale(older_than_seconds=120) == 0


def test_operator_resends_a_failed_message(chat, operator, other_operator):
    item = outbox.claim(item_id=_reply(chat, operator).pk)
    outbox.record_failure(item=item, error="window closed", permanent=True, retry_after=None)

    with pytest.raises(ActionError):
        outbox.resend(actor=other_operator, item=item)
    again = outbox.resend(actor=operator, item=item)

    assert again.pk != item.pk and again.state == "pending" and again.message_id == item.message_id
    message = Message.objects.get(pk=item.message_id)
    assert (message.delivery_state, message.delivery_error) == ("queued", "")
    with pytest.raises(ActionError) as twice:
        outbox.resend(actor=operator, item=item)
    assert twice.value.code == "already_resent"
    with pytest.raises(ActionError):
        outbox.resend(actor=operator, item=again)  # pending: nothing to resend


def test_blocked_client_gets_nothing_until_they_write_again(chat, operator):
    pending = _reply(chat, operator)

    inbound.record_client_event(
        channel=chat.channel, kind=KIND, client=ClientRef(external_id="1001"), event="unsubscribed"
    )

    pending.refresh_from_db()
    assert (pending.state, pending.permanent) == ("failed", True)
    note = Message.objects.filter(conversation=chat, sender="system").order_by("-id").first()
    assert note.text.startswith("The client blocked the bot")
    later = _reply(chat, operator, "Вы здесь?")
    assert later.state == "failed" and later.last_error == "The client blocked the bot"
    assert Message.objects.get(pk=later.message_id).delivery_state == "failed"

    receive(chat.channel, client_visitor(chat.channel), "m9", "Я снова тут")
    assert _reply(chat, operator, "Отлично").state == "pending"
