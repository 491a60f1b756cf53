"""Delivery to a real receiver on loopback: retries, order, exactly once, outage, Resend, disable."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from openline.conversations.actions import (
    close_conversation,
    create_visitor,
    receive_message,
    send_reply,
    start_conversation,
)
from openline.webhooks import services
from openline.webhooks.delivery import DISABLE_AFTER, claim, deliver_due, due_ids, resend
from openline.webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from openline.webhooks.tests.helpers import deliver_all, time_passes
from openline.webhooks.tests.receiver import Receiver, free_port

CHAT_EVENTS = ["conversation.started", "conversation.closed", "message.received", "message.sent"]


def _endpoint(administrator, url):
    endpoint, secret = services.create_endpoint(actor=administrator, url=url, events=CHAT_EVENTS)
    return endpoint, secret


def _conversation(channel, operator, n: int, tag: str):
    visitor = create_visitor(channel=channel, origin="livechat")
    conversation = start_conversation(channel=channel, visitor=visitor)
    for i in range(n):
        receive_message(conversation=conversation, visitor=visitor, text=f"{tag} question {i}")
        send_reply(conversation=conversation, actor=operator, text=f"{tag} answer {i}")
    close_conversation(conversation=conversation, actor=operator)
    return conversation


def _check_received(receiver: Receiver, secret: str) -> list[dict]:
    """Every accepted request verifies; return the events, one per webhook-id."""
    events = []
    for headers, body in receiver.accepted():
        events.append(Webhook(secret).verify(body, headers))
    ids = Counter(h["webhook-id"] for h, _ in receiver.accepted())
    assert [i for i, n in ids.items() if n > 1] == [], "an event arrived twice"
    return events


def test_retries_until_accepted_each_event_once_in_order_per_conversation(
    administrator, operator, channel
):
    with Receiver(fail_first=3) as receiver:
        endpoint, secret = _endpoint(administrator, receiver.url)
        first = _conversation(channel, operator, 2, "A")
        second = _conversation(channel, operator, 2, "B")
        written = WebhookDelivery.objects.count()
        assert written == 2 * (1 + 4 + 1)
        deliver_all()
    events = _check_received(receiver, secret)
    assert len(events) == written
    assert len(receiver.requests) == written + 3  # three refused, then each once
    for conversation, tag in ((first, "A"), (second, "B")):
        mine = [e for e in events if e["data"]["conversation_id"] == conversation.pk]
        assert [e["type"] for e in mine] == [
            "conversation.started",
            "message.received",
            "message.sent",
            "message.received",
            "message.sent",
            "conversation.closed",
        ]
        texts = [e["data"]["text"] for e in mine if e["type"].startswith("message.")]
        assert texts == [
            f"{tag} question 0",
            f"{tag} answer 0",
            f"{tag} question 1",
            f"{tag} answer 1",
        ]
    assert not WebhookDelivery.objects.exclude(state=DeliveryState.DELIVERED).exists()
    # Every attempt is recorded, the refused ones with their code, duration and next retry.
    failed = WebhookAttempt.objects.filter(status_code=503)
    assert failed.count() == 3
    assert all(a.next_retry_at and a.next_retry_at > a.started_at for a in failed)
    assert WebhookAttempt.objects.filter(status_code=204).count() == written
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is None


def test_a_later_event_waits_while_an_earlier_one_of_its_conversation_is_undelivered(
    administrator, operator, channel
):
    with Receiver(fail_first=1) as receiver:
        _endpoint(administrator, receiver.url)
        conversation = _conversation(channel, operator, 1, "A")
        deliver_due()
        # The first event was refused; nothing after it was sent, though all are due.
        assert len(receiver.requests) == 1
        assert json.loads(receiver.requests[0][1])["type"] == "conversation.started"
        later = WebhookDelivery.objects.exclude(pk=WebhookDelivery.objects.order_by("id")[0].pk)
        assert all(claim(d.pk) is None for d in later)
        time_passes()
        deliver_due()
    types = [e["type"] for e in receiver.accepted_events()]
    assert types == [
        "conversation.started",
        "message.received",
        "message.sent",
        "conversation.closed",
    ]
    assert {e["data"]["conversation_id"] for e in receiver.accepted_events()} == {conversation.pk}


def test_two_workers_never_claim_one_delivery(administrator, operator, channel):
    _endpoint(administrator, "http://127.0.0.1:9/hooks")
    visitor = create_visitor(channel=channel, origin="livechat")
    start_conversation(channel=channel, visitor=visitor)
    (delivery_id,) = due_ids()
    assert claim(delivery_id) is not None
    assert claim(delivery_id) is None  # the second worker gets nothing while the lease runs
    # A worker that died: its lease runs out and another one takes the delivery.
    WebhookDelivery.objects.filter(pk=delivery_id).update(
        claimed_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert claim(delivery_id) is not None


def test_receiver_down_loses_nothing_and_delivery_resumes(administrator, operator, channel):
    port = free_port()
    endpoint, secret = _endpoint(administrator, f"http://127.0.0.1:{port}/hooks")
    _conversation(channel, operator, 1, "A")
    for _ in range(3):  # the receiver is down: refused connections, each recorded
        deliver_due()
        time_passes()
    attempts = list(WebhookAttempt.objects.all())
    assert attempts and all(a.status_code is None and a.error for a in attempts)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is not None
    assert WebhookDelivery.objects.filter(state=DeliveryState.PENDING).count() == 4
    with Receiver(port=port) as receiver:  # back up on the same port
        deliver_all()
    events = _check_received(receiver, secret)
    assert [e["type"] for e in events] == [
        "conversation.started",
        "message.received",
        "message.sent",
        "conversation.closed",
    ]
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is None


def test_resend_sends_the_same_event_with_the_same_id(administrator, channel):
    with Receiver() as receiver:
        endpoint, secret = _endpoint(administrator, receiver.url)
        start_conversation(
            channel=channel, visitor=create_visitor(channel=channel, origin="livechat")
        )
        deliver_all()
        delivery = WebhookDelivery.objects.get()
        result = resend(delivery)
    assert result is not None and result.ok and result.manual
    first, again = receiver.accepted()
    assert first[0]["webhook-id"] == again[0]["webhook-id"] == delivery.message_id
    assert first[1] == again[1]
    Webhook(secret).verify(again[1], again[0])
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 2


def test_an_endpoint_failing_for_five_days_is_disabled_and_keeps_its_events(
    administrator, operator, channel
):
    port = free_port()
    endpoint, secret = _endpoint(administrator, f"http://127.0.0.1:{port}/hooks")
    start_conversation(channel=channel, visitor=create_visitor(channel=channel, origin="livechat"))
    deliver_due()
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.failing_since
    # Four days later: still failing, still active.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - DISABLE_AFTER + dt.timedelta(days=1)
    )
    time_passes()
    deliver_due()
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).is_active
    # Five days and more: the next failure disables it, with a notice.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - DISABLE_AFTER - dt.timedelta(minutes=1)
    )
    time_passes()
    deliver_due()
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert "Disabled automatically" in endpoint.disabled_reason
    # Disabled: nothing is tried, new events are not queued, kept ones stay.
    time_passes()
    assert due_ids() == []
    start_conversation(channel=channel, visitor=create_visitor(channel=channel, origin="livechat"))
    assert WebhookDelivery.objects.count() == 1
    # Enabled again with the receiver back: the kept event arrives.
    with Receiver(port=port) as receiver:
        services.set_active(endpoint=endpoint, active=True)
        deliver_all()
    assert [e["type"] for e in _check_received(receiver, secret)] == ["conversation.started"]


@pytest.mark.parametrize("status", [301, 400, 500])
def test_non_2xx_answers_are_failures(administrator, channel, status):
    with Receiver(fail_first=1, fail_status=status) as receiver:
        _endpoint(administrator, receiver.url)
        start_conversation(
            channel=channel, visitor=create_visitor(channel=channel, origin="livechat")
        )
        deliver_due()
        delivery = WebhookDelivery.objects.get()
        assert delivery.state == DeliveryState.PENDING and delivery.last_status_code == status
        time_passes()
        deliver_due()
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED


def test_a_commit_enqueues_delivery_and_the_task_and_sweep_send(
    administrator, channel, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    from openline.connectors.management.commands.messengers_run import Command
    from openline.webhooks.tasks import deliver_webhooks

    with Receiver() as receiver:
        _endpoint(administrator, receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            start_conversation(
                channel=channel, visitor=create_visitor(channel=channel, origin="livechat")
            )
        queued = DBTaskResult.objects.filter(task_path=deliver_webhooks.module_path)
        assert queued.count() == 1
        with django_capture_on_commit_callbacks(execute=True):
            start_conversation(
                channel=channel, visitor=create_visitor(channel=channel, origin="livechat")
            )
        assert queued.count() == 1  # one waiting task covers both commits
        assert deliver_webhooks.call() == {"attempted": 2}
        with django_capture_on_commit_callbacks(execute=True):
            start_conversation(
                channel=channel, visitor=create_visitor(channel=channel, origin="livechat")
            )
        command = Command()
        command.interval = 1.0
        command.webhooks()  # the messengers_run sweep
    assert len(receiver.accepted()) == 3
    assert not WebhookDelivery.objects.exclude(state=DeliveryState.DELIVERED).exists()
