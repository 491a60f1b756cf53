"""Consent proof in messengers: only a warning that really went out can be confirmed."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from openline.consent.models import ConsentRecord
from openline.consent.services import create_agreement, update_agreement
from openline.conversations import inbound, outbox
from openline.conversations.actions import close_conversation
from openline.conversations.models import OutboxItem, Visitor
from openline.conversations.tests.inbound_helpers import (
    KIND,
    SOURCE,
    client_visitor,
    consented,
    receive,
    send_outbox,
)

pytestmark = pytest.mark.django_db


def test_a_queued_warning_is_not_confirmed_by_writing_again(messenger_channel):
    visitor = client_visitor(messenger_channel)
    receive(messenger_channel, visitor, "m1", "Здравствуйте")

    second = receive(messenger_channel, visitor, "m2", "Вы тут?")

    assert second.consent == "" and not ConsentRecord.objects.exists()
    assert OutboxItem.objects.count() == 1  # no second warning while the first is queued
    send_outbox(visitor)
    assert receive(messenger_channel, visitor, "m3", "Ау").consent == "given"


def test_a_failed_warning_is_sent_again_never_confirmed(messenger_channel):
    visitor = client_visitor(messenger_channel)
    receive(messenger_channel, visitor, "m1", "Здравствуйте")
    warning = OutboxItem.objects.get()
    outbox.record_failure(
        item=outbox.claim(item_id=warning.pk), error="blocked", permanent=True, retry_after=None
    )

    second = receive(messenger_channel, visitor, "m2", "Вы тут?")

    assert second.consent == "warned" and not ConsentRecord.objects.exists()
    assert OutboxItem.objects.count() == 2


def test_a_message_written_before_the_warning_went_out_confirms_nothing(messenger_channel):
    visitor = client_visitor(messenger_channel)
    receive(messenger_channel, visitor, "m1", "Здравствуйте")
    send_outbox(visitor)
    warning = OutboxItem.objects.get()

    crossed = inbound.receive_inbound(
        channel=messenger_channel,
        kind=KIND,
        visitor=visitor,
        key="m2",
        text="Ещё вопрос",
        source=SOURCE,
        sent_at=warning.sent_at - dt.timedelta(seconds=5),
    )
    assert crossed.consent == "" and not ConsentRecord.objects.exists()

    later = warning.sent_at + dt.timedelta(seconds=3)
    after = inbound.receive_inbound(
        channel=messenger_channel,
        kind=KIND,
        visitor=visitor,
        key="m3",
        text="Хорошо",
        source=SOURCE,
        sent_at=later,
    )
    assert after.consent == "given"
    evidence = ConsentRecord.objects.get().evidence
    assert evidence["warning_sent_at"] == warning.sent_at.isoformat()
    assert evidence["confirming_message_sent_at"] == later.isoformat()
    text = warning.message.text
    assert evidence["warning_text"] == text
    assert evidence["warning_text_sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_a_reaction_or_service_message_never_confirms(messenger_channel):
    visitor = client_visitor(messenger_channel)
    receive(messenger_channel, visitor, "m1", "Здравствуйте")
    send_outbox(visitor)

    reaction = inbound.receive_inbound(
        channel=messenger_channel,
        kind=KIND,
        visitor=visitor,
        key="r1",
        text="👎",
        source=SOURCE,
        content=False,
    )

    assert reaction.consent == "" and reaction.message.text == "👎"  # operators still see it
    assert not ConsentRecord.objects.exists()
    assert Visitor.objects.get(pk=visitor.pk).awaiting_consent_since is not None


def test_an_old_versions_accept_button_never_confirms_the_new_version(
    buttons_channel, administrator
):
    visitor = client_visitor(buttons_channel)
    v1 = buttons_channel.agreement.current_version
    receive(buttons_channel, visitor, "b1", "Привет")
    send_outbox(visitor)
    v2 = update_agreement(
        actor=administrator, agreement=buttons_channel.agreement, texts={"en": "Phone too."}
    )
    close_conversation(conversation=visitor.conversations.get(), actor=None, reason="x")
    assert receive(buttons_channel, visitor, "b2", "Снова я").consent == "warned"
    send_outbox(visitor)

    old = receive(buttons_channel, visitor, "b3", "", button=f"consent:accept:{v1.id}")
    bare = receive(buttons_channel, visitor, "b4", "", button="consent:accept")

    assert (old.consent, bare.consent) == ("warned", "warned")
    assert not ConsentRecord.objects.exists()
    newest = OutboxItem.objects.order_by("-id").first()
    assert newest.payload["buttons"][0]["id"] == f"consent:accept:{v2.id}"
    send_outbox(visitor)
    ok = receive(buttons_channel, visitor, "b5", "", button=f"consent:accept:{v2.id}")
    assert ok.consent == "given"
    assert ConsentRecord.objects.get().version_id == v2.id


def test_declining_an_old_warning_deletes_nothing_and_raises_nothing(
    buttons_channel, administrator
):
    visitor = client_visitor(buttons_channel)
    v1 = buttons_channel.agreement.current_version
    receive(buttons_channel, visitor, "b1", "Привет")
    send_outbox(visitor)
    receive(buttons_channel, visitor, "b2", "", button=f"consent:accept:{v1.id}")
    update_agreement(
        actor=administrator, agreement=buttons_channel.agreement, texts={"en": "Phone too."}
    )
    close_conversation(conversation=visitor.conversations.get(), actor=None, reason="x")
    receive(buttons_channel, visitor, "b3", "Снова я")  # warned about v2

    stale = receive(buttons_channel, visitor, "b4", "", button=f"consent:decline:{v1.id}")

    assert (stale.consent, stale.declined) == ("", False)
    assert OutboxItem.objects.order_by("-id").first().payload["text"].startswith("Эта кнопка")
    assert Visitor.objects.get(pk=visitor.pk).erased_at is None


def test_the_keyword_withdraws_even_when_the_channel_stopped_asking(messenger_channel):
    given = consented(messenger_channel)
    messenger_channel.consent_enabled = False
    messenger_channel.save(update_fields=["consent_enabled"])

    result = receive(messenger_channel, given.visitor, "m3", "/stop")

    assert result.consent == "withdrawn"
    assert ConsentRecord.objects.order_by("-id").first().state == "withdrawn"


def test_the_keyword_withdraws_a_consent_the_channel_no_longer_uses(
    messenger_channel, administrator
):
    given = consented(messenger_channel)
    old = messenger_channel.agreement
    messenger_channel.agreement = create_agreement(
        actor=administrator, name="Other", text="Another consent.", allow_html=False
    )
    messenger_channel.save(update_fields=["agreement"])

    result = receive(messenger_channel, given.visitor, "m3", "/stop")

    assert result.consent == "withdrawn"
    withdrawal = ConsentRecord.objects.order_by("-id").first()
    assert (withdrawal.state, withdrawal.agreement_id) == ("withdrawn", old.pk)


def test_an_operator_withdraws_a_consent_the_channel_no_longer_uses(
    messenger_channel, administrator, operator
):
    given = consented(messenger_channel)
    old = messenger_channel.agreement
    messenger_channel.agreement = None
    messenger_channel.save(update_fields=["agreement"])

    record = inbound.withdraw_on_request(actor=operator, conversation=given.conversation)

    assert (record.state, record.agreement_id) == ("withdrawn", old.pk)
    given.conversation.refresh_from_db()
    assert given.conversation.status == "closed"
