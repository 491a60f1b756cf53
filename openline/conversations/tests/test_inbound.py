"""Messenger clients write in: one visitor, one message per key, consent by continued chat."""

from __future__ import annotations

import hashlib
import threading
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.urls import reverse

from openline.consent.models import ConsentRecord
from openline.consent.services import update_agreement
from openline.conversations import inbound, outbox
from openline.conversations.actions import ActionError, close_conversation
from openline.conversations.erasure import erase_visitor
from openline.conversations.inbound import NO_IP_REASON, conversation_link, version_link
from openline.conversations.models import Conversation, Message, OutboxItem, Visitor
from openline.conversations.tests.inbound_helpers import (
    KIND,
    SOURCE,
    client_visitor,
    consented,
    ivan,
    receive,
    send_outbox,
)
from openline.openchannels.services import consent_settings

pytestmark = pytest.mark.django_db


def test_first_message_is_stored_and_warns_with_the_exact_version_link(messenger_channel, client):
    version = messenger_channel.agreement.current_version
    visitor = client_visitor(messenger_channel)

    result = receive(messenger_channel, visitor, "m1", "Здравствуйте")

    assert (result.consent, result.duplicate, result.declined) == ("warned", False, False)
    assert result.conversation.origin == KIND
    assert result.message.text == "Здравствуйте" and result.message.external_id == "m1"
    item = OutboxItem.objects.get()
    link = version_link(version)
    assert link.startswith("http") and link.endswith(f"/{version.public_code}/")
    assert item.payload["text"].startswith("Продолжая общение в этом чате")
    assert item.payload["text"].endswith(link)
    assert (item.kind, item.recipient, item.state) == (KIND, "1001", "pending")
    # The operators see what the client was sent, as a system message still queued.
    assert item.message.sender == "system" and item.message.delivery_state == "queued"
    visitor.refresh_from_db()
    assert visitor.warning_version_id == version.id
    assert visitor.awaiting_consent_since is not None
    assert not ConsentRecord.objects.exists()
    # The link opens the public page of that version.
    page = client.get(urlsplit(link).path)
    assert page.status_code == 200
    assert "We process your name" in page.content.decode()


def test_second_message_records_one_consent_without_ip(messenger_channel):
    visitor = client_visitor(messenger_channel)
    first = receive(messenger_channel, visitor, "m1", "Здравствуйте")
    send_outbox(visitor)

    second = receive(messenger_channel, visitor, "m2", "Когда доставка?")
    third = receive(messenger_channel, visitor, "m3", "Спасибо")

    assert (second.consent, third.consent) == ("given", "")
    record = ConsentRecord.objects.get()
    assert record.state == "given" and record.method == "continued_chatting"
    assert record.origin == KIND
    assert record.version == messenger_channel.agreement.current_version
    assert record.ip is None and record.ip_missing_reason == NO_IP_REASON
    assert (record.source_type, record.source_id, record.source_label) == (
        "crm_item",
        SOURCE.id,
        SOURCE.label,
    )
    assert record.address == conversation_link(first.conversation)
    assert record.address.endswith(
        reverse("conversations:conversation", kwargs={"conversation_id": first.conversation.pk})
    )
    assert record.conversation == first.conversation and record.user_agent == ""
    warning_item = OutboxItem.objects.get()
    warning = warning_item.message
    assert record.evidence["warning_message_id"] == warning.id
    # The proof names when the warning really went out and exactly what it said.
    assert record.evidence["warning_sent_at"] == warning_item.sent_at.isoformat()
    assert record.evidence["warning_text"] == warning.text
    assert (
        record.evidence["warning_text_sha256"] == hashlib.sha256(warning.text.encode()).hexdigest()
    )
    assert record.evidence["confirming_message_key"] == "m2"
    assert record.evidence["mode"] == "warning" and record.evidence["messenger"] == KIND
    assert record.evidence["channel_consent_settings"] == consent_settings(messenger_channel)
    visitor.refresh_from_db()
    assert visitor.awaiting_consent_since is None
    # One conversation, three client messages, one warning sent.
    assert Conversation.objects.count() == 1
    assert Message.objects.filter(sender="visitor").count() == 3
    assert OutboxItem.objects.count() == 1


def test_duplicate_key_changes_nothing(messenger_channel):
    visitor = client_visitor(messenger_channel)
    receive(messenger_channel, visitor, "m1")
    send_outbox(visitor)
    receive(messenger_channel, visitor, "m2")
    before = (Message.objects.count(), OutboxItem.objects.count(), ConsentRecord.objects.count())

    again = receive(messenger_channel, visitor, "m2")
    first_again = receive(messenger_channel, visitor, "m1")

    assert again.duplicate and first_again.duplicate
    assert again.message.external_id == "m2" and again.consent == ""
    after = (Message.objects.count(), OutboxItem.objects.count(), ConsentRecord.objects.count())
    assert after == before == (3, 1, 1)


def test_client_profile_follows_the_platform_and_erased_clients_start_over(
    messenger_channel, administrator
):
    visitor = client_visitor(messenger_channel)
    same = client_visitor(messenger_channel, ivan(name="Ivan Petrov", language="", phone="+7 900"))
    assert same.pk == visitor.pk
    visitor.refresh_from_db()
    # A newer name and phone are kept; a missing language does not blank the known one.
    assert (visitor.name, visitor.language, visitor.phone) == ("Ivan Petrov", "ru", "+7 900")

    erase_visitor(actor=administrator, visitor=visitor)
    fresh = client_visitor(messenger_channel)

    assert fresh.pk != visitor.pk and fresh.erased_at is None
    assert Visitor.objects.filter(external_id="1001").count() == 1
    assert receive(messenger_channel, fresh, "new-1").consent == "warned"


def test_new_version_is_announced_at_the_next_conversation_only(messenger_channel, administrator):
    first = consented(messenger_channel)
    v2 = update_agreement(
        actor=administrator,
        agreement=messenger_channel.agreement,
        texts={"en": "We now also process your phone number."},
    )
    assert v2 is not None

    mid = receive(messenger_channel, first.visitor, "m3", "Ещё вопрос")
    assert mid.consent == "" and OutboxItem.objects.count() == 1  # no warning mid-conversation

    close_conversation(conversation=first.conversation, actor=None, reason="done")
    later = receive(messenger_channel, first.visitor, "m4", "Снова я")
    assert later.consent == "warned" and later.conversation.pk != first.conversation.pk
    warning = OutboxItem.objects.order_by("-id").first()
    assert warning.payload["text"].endswith(version_link(v2))
    send_outbox(first.visitor)

    confirmed = receive(messenger_channel, first.visitor, "m5", "Хорошо")
    assert confirmed.consent == "given"
    assert list(ConsentRecord.objects.values_list("version__number", flat=True).order_by("id")) == [
        1,
        2,
    ]


def test_buttons_accept_records_a_click_and_plain_text_confirms_nothing(buttons_channel):
    visitor = client_visitor(buttons_channel)
    assert receive(buttons_channel, visitor, "b1", "Привет").consent == "warned"
    warning = OutboxItem.objects.get()
    version_id = buttons_channel.agreement.current_version.id
    assert warning.payload["buttons"] == [
        {"id": f"consent:accept:{version_id}", "title": "Я принимаю"},
        {"id": f"consent:decline:{version_id}", "title": "Я отказываюсь"},
    ]
    send_outbox(visitor)

    text = receive(buttons_channel, visitor, "b2", "А можно без кнопок?")
    assert text.consent == "" and not ConsentRecord.objects.exists()

    click = receive(buttons_channel, visitor, "b3", "", button=f"consent:accept:{version_id}")
    assert click.consent == "given" and click.message.text == "Я принимаю"
    record = ConsentRecord.objects.get()
    assert record.method == "clicked_accept" and record.ip is None
    assert record.evidence["confirming_message_key"] == "b3"
    thanks = OutboxItem.objects.order_by("-id").first()
    assert thanks.payload["text"].startswith("Спасибо")


def test_buttons_decline_stores_no_refusal(buttons_channel):
    visitor = client_visitor(buttons_channel)
    receive(buttons_channel, visitor, "b1", "Привет")
    version_id = buttons_channel.agreement.current_version.id

    result = receive(buttons_channel, visitor, "b2", "", button=f"consent:decline:{version_id}")

    assert result.declined and result.consent == "declined"
    assert not ConsentRecord.objects.exists()
    notice = OutboxItem.objects.order_by("-id").first()
    assert notice.payload["text"].startswith("Без согласия")


def test_withdrawal_keyword_records_a_withdrawal_and_closes(messenger_channel):
    given = consented(messenger_channel)

    result = receive(messenger_channel, given.visitor, "m3", "  /STOP ")

    assert result.consent == "withdrawn"
    record = ConsentRecord.objects.order_by("-id").first()
    assert (record.state, record.method, record.origin) == (
        "withdrawn",
        "withdrawn_by_client",
        KIND,
    )
    assert record.ip is None and record.ip_missing_reason == NO_IP_REASON
    assert record.source_id == SOURCE.id
    assert record.address == conversation_link(given.conversation)
    given.conversation.refresh_from_db()
    assert given.conversation.status == "closed"
    told = OutboxItem.objects.order_by("-id").first()
    assert told.payload["text"].startswith("Ваше согласие")
    # Writing again starts over: a new warning, never a silent re-consent.
    again = receive(messenger_channel, given.visitor, "m4", "Я вернулся")
    assert again.consent == "warned"
    assert ConsentRecord.objects.filter(state="given").count() == 1


def test_withdrawal_keyword_without_consent_says_there_is_nothing(messenger_channel):
    visitor = client_visitor(messenger_channel)
    receive(messenger_channel, visitor, "m1")

    result = receive(messenger_channel, visitor, "m2", "отозвать согласие")

    assert result.consent == "" and not ConsentRecord.objects.exists()
    assert OutboxItem.objects.order_by("-id").first().payload["text"].startswith("Вы не давали")


def test_consent_off_just_stores(messenger_channel):
    messenger_channel.consent_enabled = False
    messenger_channel.save(update_fields=["consent_enabled"])
    visitor = client_visitor(messenger_channel)

    result = receive(messenger_channel, visitor, "m1")

    assert result.consent == "" and result.message is not None
    assert not OutboxItem.objects.exists()


def test_operator_records_withdrawal_on_request(messenger_channel, operator, other_operator):
    given = consented(messenger_channel)
    with pytest.raises(ActionError) as refused:
        inbound.withdraw_on_request(actor=other_operator, conversation=given.conversation)
    assert refused.value.code == "forbidden"

    record = inbound.withdraw_on_request(actor=operator, conversation=given.conversation)

    assert (record.state, record.method) == ("withdrawn", "withdrawn_on_request")
    assert record.get_method_display() == "Withdrawn by an operator on the client's request"
    assert record.ip is None and record.evidence["recorded_by_user_id"] == operator.pk
    given.conversation.refresh_from_db()
    assert given.conversation.status == "closed"
    assert OutboxItem.objects.order_by("-id").first().payload["text"].startswith("Ваше согласие")
    with pytest.raises(ActionError) as twice:
        inbound.withdraw_on_request(actor=operator, conversation=given.conversation)
    assert twice.value.code == "not_given"


def test_operator_records_withdrawal_in_live_chat(channel, operator):
    from openline.consent.services import record_consent
    from openline.conversations.actions import start_conversation

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

    record = inbound.withdraw_on_request(actor=operator, conversation=conversation)

    assert record.origin == "livechat" and record.method == "withdrawn_on_request"
    # The widget is told in the chat itself; nothing goes through the messenger outbox.
    notice = Message.objects.filter(conversation=conversation, sender="system").get()
    assert notice.text.startswith("Your consent")
    assert not OutboxItem.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_make_one_of_everything(postgres_only, messenger_channel):
    def deliver_twice(key: str, text: str) -> list:
        barrier = threading.Barrier(2)
        results, errors = [], []

        def one():
            try:
                barrier.wait(timeout=10)
                visitor = client_visitor(messenger_channel)
                results.append(receive(messenger_channel, visitor, key, text))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        return results

    first = deliver_twice("m1", "Здравствуйте")
    send_outbox(Visitor.objects.get())
    second = deliver_twice("m2", "Продолжаю")

    assert Visitor.objects.count() == 1
    assert Message.objects.filter(sender="visitor").count() == 2
    assert OutboxItem.objects.count() == 1
    assert ConsentRecord.objects.count() == 1
    assert sorted(r.duplicate for r in first) == [False, True]
    assert sorted(r.consent for r in second) == ["", "given"]


def test_decline_answer_still_goes_out_after_the_data_is_deleted(buttons_channel):
    from openline.crm.awaiting import delete_client_data

    visitor = client_visitor(buttons_channel)
    receive(buttons_channel, visitor, "b1", "Привет")
    warning = OutboxItem.objects.get()
    outbox.record_sent(item=outbox.claim(item_id=warning.pk), platform_message_id="w1")
    pressed = f"consent:decline:{buttons_channel.agreement.current_version.id}"
    result = receive(buttons_channel, visitor, "b2", "", button=pressed)

    delete_client_data(actor=None, visitor=result.visitor, reason="The client declined consent.")

    answer = OutboxItem.objects.order_by("-id").first()
    assert answer.state == "pending" and answer.recipient == "1001"
    assert answer.payload["text"].startswith("Без согласия")
    # The finished send to the deleted client keeps neither their id nor what they were sent.
    warning.refresh_from_db()
    assert (warning.recipient, warning.payload) == ("", {})
    assert not Message.objects.filter(conversation__visitor=visitor).exists()

    outbox.record_sent(item=outbox.claim(item_id=answer.pk), platform_message_id="w2")

    answer.refresh_from_db()
    assert (answer.state, answer.recipient, answer.payload) == ("sent", "", {})
    assert not ConsentRecord.objects.exists()
