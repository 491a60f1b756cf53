"""The messengers loop's sweeps: stale sends become uncertain after ``--uncertain-after``, and
consent records whose sealing task was lost (its worker killed) are sealed."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from openline.connectors.management.commands import messengers_run
from openline.connectors.management.commands.messengers_run import Command
from openline.consent.models import SealBatch
from openline.consent.services import record_consent
from openline.conversations import outbox
from openline.conversations.models import OutboxItem, Visitor
from openline.conversations.tests.inbound_helpers import client_visitor, receive, with_telegram

pytestmark = pytest.mark.django_db


def claimed_item(channel, seconds_ago: float) -> OutboxItem:
    """A reply claimed by a worker ``seconds_ago`` seconds ago that never answered (killed)."""
    visitor = client_visitor(with_telegram(channel))
    conversation = receive(channel, visitor, "k1", "Hello").conversation
    item = outbox.enqueue(conversation=conversation, text="On its way")
    assert outbox.claim(item_id=item.pk) is not None
    OutboxItem.objects.filter(pk=item.pk).update(
        claimed_at=timezone.now() - dt.timedelta(seconds=seconds_ago)
    )
    return item


def options(*argv: str) -> dict:
    return vars(Command().create_parser("manage.py", "messengers_run").parse_args(argv))


def test_uncertain_after_defaults_to_two_minutes_and_can_be_shortened():
    assert options()["uncertain_after"] == 120.0
    assert options("--uncertain-after", "15")["uncertain_after"] == 15.0


def test_a_send_whose_worker_died_is_marked_uncertain_after_the_given_time(channel):
    item = claimed_item(channel, seconds_ago=20)
    command = Command()
    command.uncertain_after = 120.0
    command.reap()
    item.refresh_from_db()
    assert item.state == "sending"  # its worker may still be waiting for the platform
    command.uncertain_after = 15.0
    command.reap()
    item.refresh_from_db()
    assert item.state == "uncertain"
    assert item.message.delivery_state == "failed"
    assert item.last_error == outbox.UNCERTAIN_NOTE


@pytest.mark.django_db(transaction=True)
def test_the_loop_seals_records_whose_sealing_task_was_lost(channel, monkeypatch):
    # No worker runs here: the task enqueued after the commit stands for one that was lost.
    monkeypatch.setattr(messengers_run, "SEAL_LEFTOVER_AFTER", dt.timedelta(0))
    visitor = Visitor.objects.create(origin="livechat", channel=channel, name="Vera")
    record_consent(
        visitor=visitor,
        version=channel.agreement.current_version,
        language="en",
        state="given",
        method="clicked_accept",
        origin="livechat",
        source_type="website",
        address="https://example.com/",
        ip="203.0.113.7",
        channel=channel,
    )
    Command().seal()
    assert sum(SealBatch.objects.values_list("record_count", flat=True)) == 1
    Command().seal()  # nothing left: sealed once
    assert SealBatch.objects.count() == 1
