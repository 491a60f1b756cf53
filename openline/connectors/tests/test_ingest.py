"""Processing stored events: in order, once, retried with back-off, failures shown."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from openline.connectors import ingest
from openline.connectors.base import ClientIdentity, InboundMessage, StatusEvent
from openline.connectors.models import InboundEvent
from openline.connectors.tests.helpers import answer_platform_apis, connect
from openline.conversations.models import Message, OutboxItem, Visitor
from openline.crm.models import CrmVisitor


@pytest.fixture
def telegram(channel, fake_platform, administrator):
    answer_platform_apis(fake_platform)
    return connect(channel, "telegram", base="http://testserver", actor=administrator)


def message(
    key: str, text: str, external_id: str = "111222333", name: str = "Ivan"
) -> InboundMessage:
    return InboundMessage(
        key=key, client=ClientIdentity(external_id=external_id, name=name, language="en"), text=text
    )


def test_stored_messages_become_one_client_one_item_and_a_warning_in_order(telegram):
    events = [message("1", "first"), message("2", "second"), message("1", "first again")]
    assert ingest.store_events(connector=telegram, events=events) == 2
    outcome = ingest.process_pending(connector_id=telegram.pk)
    assert (outcome.done, outcome.failed) == (2, 0)
    visitor = Visitor.objects.get(external_id="111222333", origin="telegram")
    assert CrmVisitor.objects.filter(visitor=visitor).count() == 1
    texts = list(
        Message.objects.filter(conversation__visitor=visitor, sender="visitor")
        .order_by("id")
        .values_list("text", flat=True)
    )
    assert texts == ["first", "second"]
    # The warning went to the outbox on the first message.
    assert OutboxItem.objects.filter(conversation__visitor=visitor).count() >= 1
    assert set(InboundEvent.objects.values_list("state", flat=True)) == {"done"}
    # Processing again is a no-op: done events are never redone.
    again = ingest.process_pending(connector_id=telegram.pk)
    assert again.done == 0
    assert Message.objects.filter(conversation__visitor=visitor, sender="visitor").count() == 2


def test_a_failing_event_is_retried_with_backoff_then_failed_and_shown(telegram):
    broken = message("9", "no client id", external_id="")
    ingest.store_events(connector=telegram, events=[broken, message("10", "fine", "555")])
    outcome = ingest.process_pending(connector_id=telegram.pk)
    assert (outcome.done, outcome.failed) == (1, 0)
    row = InboundEvent.objects.get(event_key="9")
    assert (row.state, row.attempts) == ("pending", 1)
    assert "ValueError" in row.last_error
    assert outcome.retry_at is not None and outcome.retry_at > timezone.now()
    # Not due yet: nothing happens.
    assert ingest.process_pending(connector_id=telegram.pk).done == 0
    assert InboundEvent.objects.get(event_key="9").attempts == 1
    for attempt in range(2, ingest.MAX_ATTEMPTS + 1):
        InboundEvent.objects.filter(event_key="9").update(
            processed_at=timezone.now() - dt.timedelta(hours=1)
        )
        ingest.process_pending(connector_id=telegram.pk)
        assert InboundEvent.objects.get(event_key="9").attempts == attempt
    row = InboundEvent.objects.get(event_key="9")
    assert row.state == "failed"
    telegram.refresh_from_db()
    assert "could not be processed" in telegram.last_error
    assert telegram.last_error_at is not None


def test_a_clients_later_message_waits_for_their_earlier_failed_one(telegram):
    # The first message failed a moment ago and waits for its retry: the same client's next
    # message must not overtake it; another client's message is not held up.
    ingest.store_events(connector=telegram, events=[message("20", "earlier", "777")])
    InboundEvent.objects.filter(event_key="20").update(attempts=1, processed_at=timezone.now())
    ingest.store_events(
        connector=telegram, events=[message("21", "later", "777"), message("22", "other", "888")]
    )
    outcome = ingest.process_pending(connector_id=telegram.pk)
    assert outcome.done == 1
    assert InboundEvent.objects.get(event_key="21").state == "pending"
    assert InboundEvent.objects.get(event_key="22").state == "done"
    assert not Visitor.objects.filter(external_id="777").exists()
    assert outcome.retry_at is not None


def test_a_status_for_an_unknown_message_is_done_without_effect(telegram):
    status = StatusEvent(key="s1", platform_message_id="nope", state="read")
    ingest.store_events(connector=telegram, events=[status])
    assert ingest.process_pending().done == 1
    assert InboundEvent.objects.get(event_key="s1").state == "done"


def test_strings_that_no_database_stores_are_cleaned_before_storing(telegram):
    odd = message("30", "nul\x00 and lone \ud800 surrogate", name="Zo\x00ë")
    ingest.store_events(connector=telegram, events=[odd])
    stored = InboundEvent.objects.get(event_key="30").event
    assert stored["text"] == "nul and lone \ufffd surrogate"
    assert stored["client"]["name"] == "Zoë"
