"""Processing stored events: in order, once, retried with back-off, failures shown."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from openline.connectors import ingest
from openline.connectors.base import ClientIdentity, InboundMessage, StatusEvent, event_to_json
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


def _send_warnings(visitor) -> None:
    from openline.conversations.tests.inbound_helpers import send_outbox

    send_outbox(visitor)


def test_processed_events_keep_only_their_key_and_state(telegram):
    ingest.store_events(connector=telegram, events=[message("p1", "My phone is +4915112345678")])

    ingest.process_pending(connector_id=telegram.pk)

    row = InboundEvent.objects.get(event_key="p1")
    assert (row.state, row.event) == ("done", {})
    # A redelivery of the same key is still recognised and changes nothing.
    assert ingest.store_events(connector=telegram, events=[message("p1", "again")]) == 1
    assert ingest.process_pending(connector_id=telegram.pk).done == 0
    assert InboundEvent.objects.get(event_key="p1").event == {}


def test_erasing_a_client_blanks_their_unprocessed_events(telegram, administrator):
    from openline.conversations.erasure import erase_visitor

    ingest.store_events(connector=telegram, events=[message("e1", "hello")])
    ingest.process_pending(connector_id=telegram.pk)
    visitor = Visitor.objects.get(external_id="111222333")
    broken = message("e2", "my address is Hauptstr. 1")
    ingest.store_events(connector=telegram, events=[broken, message("e3", "other", "777")])
    InboundEvent.objects.filter(event_key="e2").update(state="failed", attempts=8)
    # A row processed by an older release (which kept the payload) is blanked too.
    InboundEvent.objects.filter(event_key="e1").update(event=event_to_json(message("e1", "hi")))

    erase_visitor(actor=administrator, visitor=visitor)

    row = InboundEvent.objects.get(event_key="e2")
    assert (row.state, row.event) == ("ignored", {})
    old = InboundEvent.objects.get(event_key="e1")
    assert (old.state, old.event) == ("done", {})
    other = InboundEvent.objects.get(event_key="e3")
    assert other.state == "pending" and other.event["client"]["external_id"] == "777"


def test_events_of_a_disconnected_connector_are_ignored_and_blanked(telegram):
    from openline.openchannels.models import Connector

    ingest.store_events(connector=telegram, events=[message("d1", "late")])
    Connector.objects.filter(pk=telegram.pk).update(state="not_connected")

    ingest.process_pending(connector_id=telegram.pk)

    row = InboundEvent.objects.get(event_key="d1")
    assert (row.state, row.event) == ("ignored", {})
    assert not Visitor.objects.filter(external_id="111222333").exists()


def test_the_platforms_send_time_decides_whether_a_message_confirms(telegram):
    from openline.consent.models import ConsentRecord

    ingest.store_events(connector=telegram, events=[message("t1", "hello")])
    ingest.process_pending(connector_id=telegram.pk)
    visitor = Visitor.objects.get(external_id="111222333")
    _send_warnings(visitor)
    sent = OutboxItem.objects.get(conversation__visitor=visitor).sent_at
    identity = ClientIdentity(external_id="111222333", name="Ivan", language="en")
    before = InboundMessage(
        key="t2", client=identity, text="crossed", sent_at=sent - dt.timedelta(seconds=2)
    )
    after = InboundMessage(
        key="t3", client=identity, text="ok", sent_at=sent + dt.timedelta(seconds=2)
    )

    ingest.store_events(connector=telegram, events=[before])
    ingest.process_pending(connector_id=telegram.pk)
    assert not ConsentRecord.objects.exists()
    ingest.store_events(connector=telegram, events=[after])
    ingest.process_pending(connector_id=telegram.pk)
    record = ConsentRecord.objects.get()
    assert record.evidence["confirming_message_key"] == "t3"


def test_a_stale_decline_button_is_handled_not_retried(telegram, administrator):
    telegram.channel.messenger_consent_mode = "buttons"
    telegram.channel.save(update_fields=["messenger_consent_mode"])
    identity = ClientIdentity(external_id="111222333", name="Ivan", language="en")
    ingest.store_events(connector=telegram, events=[message("s1", "hello")])
    ingest.process_pending(connector_id=telegram.pk)
    visitor = Visitor.objects.get(external_id="111222333")
    _send_warnings(visitor)
    version = telegram.channel.agreement.current_version
    accept = InboundMessage(
        key="s2", client=identity, text="", button=f"consent:accept:{version.id}"
    )
    decline = InboundMessage(
        key="s3", client=identity, text="", button=f"consent:decline:{version.id}"
    )

    ingest.store_events(connector=telegram, events=[accept, decline])
    outcome = ingest.process_pending(connector_id=telegram.pk)

    assert (outcome.done, outcome.failed) == (2, 0)
    assert set(InboundEvent.objects.values_list("state", flat=True)) == {"done"}
    assert Visitor.objects.get(pk=visitor.pk).erased_at is None


def test_declining_deletes_the_client_and_every_stored_copy(telegram):
    telegram.channel.messenger_consent_mode = "buttons"
    telegram.channel.save(update_fields=["messenger_consent_mode"])
    identity = ClientIdentity(external_id="111222333", name="Ivan", language="en")
    ingest.store_events(connector=telegram, events=[message("x1", "hello")])
    ingest.process_pending(connector_id=telegram.pk)
    visitor = Visitor.objects.get(external_id="111222333")
    version = telegram.channel.agreement.current_version
    decline = InboundMessage(
        key="x2", client=identity, text="", button=f"consent:decline:{version.id}"
    )

    ingest.store_events(connector=telegram, events=[decline])
    ingest.process_pending(connector_id=telegram.pk)

    assert Visitor.objects.get(pk=visitor.pk).erased_at is not None
    assert list(InboundEvent.objects.values_list("event", flat=True)) == [{}, {}]


def test_a_reaction_is_shown_but_never_confirms(telegram):
    from openline.consent.models import ConsentRecord

    ingest.store_events(connector=telegram, events=[message("c1", "hello")])
    ingest.process_pending(connector_id=telegram.pk)
    visitor = Visitor.objects.get(external_id="111222333")
    _send_warnings(visitor)
    identity = ClientIdentity(external_id="111222333", name="Ivan", language="en")
    reaction = InboundMessage(key="c2", client=identity, text="[reaction 👎]", content=False)

    ingest.store_events(connector=telegram, events=[reaction])
    ingest.process_pending(connector_id=telegram.pk)

    assert Message.objects.filter(conversation__visitor=visitor, text="[reaction 👎]").exists()
    assert not ConsentRecord.objects.exists()
