"""The chat window of a messenger conversation: consent note, marks, Resend, withdrawal."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from openline.consent.models import ConsentRecord
from openline.conversations import outbox
from openline.conversations.models import Message, OutboxItem
from openline.conversations.tests.inbound_helpers import (
    client_visitor,
    consented,
    receive,
)

pytestmark = pytest.mark.django_db


def _page(client, conversation) -> str:
    response = client.get(reverse("conversations:conversation", args=[conversation.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_unconfirmed_client_shows_the_messenger_and_the_note(messenger_channel, operator_client):
    visitor = client_visitor(messenger_channel)
    result = receive(messenger_channel, visitor, "m1", "<b>Привет</b>")

    html = _page(operator_client, result.conversation)

    assert "Telegram" in html
    assert "The client has not confirmed consent yet." in html
    assert "their data must be deleted" in html
    assert f'href="{reverse("crm:awaiting")}"' in html
    assert "&lt;b&gt;Привет&lt;/b&gt;" in html  # client text is escaped
    assert 'data-state="queued"' in html  # the warning waits for the worker
    assert "Record withdrawal" not in html  # nothing to withdraw yet


def test_failed_reply_shows_its_error_and_resend_queues_it_again(
    messenger_channel, operator, operator_client
):
    chat = consented(messenger_channel).conversation
    for item in OutboxItem.objects.filter(state="pending"):
        outbox.record_sent(item=outbox.claim(item_id=item.pk), platform_message_id=str(item.pk))
    from openline.conversations.actions import send_reply

    message, _ = send_reply(conversation=chat, actor=operator, text="Завтра")
    item = outbox.claim(item_id=OutboxItem.objects.get(message=message).pk)
    outbox.record_failure(
        item=item, error="Forbidden: bot was blocked by the user", permanent=True, retry_after=None
    )

    html = _page(operator_client, chat)
    assert "Not delivered: <span" in html and "bot was blocked by the user" in html
    resend_url = reverse("conversations:resend", args=[chat.pk, message.pk])
    assert f'formaction="{resend_url}"' in html
    assert "The client has not confirmed consent yet." not in html

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    assert strict.post(resend_url).status_code == 403  # no CSRF token
    response = operator_client.post(resend_url)

    assert response.status_code == 302
    assert OutboxItem.objects.filter(message=message).count() == 2
    assert Message.objects.get(pk=message.pk).delivery_state == "queued"


def test_resend_needs_an_operator_of_the_channel(messenger_channel, auditor_client, other_operator):
    chat = consented(messenger_channel).conversation
    warning = OutboxItem.objects.get()
    url = reverse("conversations:resend", args=[chat.pk, warning.message_id])

    assert auditor_client.post(url).status_code == 403
    outsider = Client()
    outsider.force_login(other_operator)
    assert outsider.post(url).status_code == 404
    assert OutboxItem.objects.count() == 1


def test_operator_records_a_withdrawal_from_the_chat(messenger_channel, operator_client):
    chat = consented(messenger_channel).conversation
    html = _page(operator_client, chat)
    assert "Record withdrawal of consent" in html

    response = operator_client.post(reverse("conversations:record_withdrawal", args=[chat.pk]))

    assert response.status_code == 302
    record = ConsentRecord.objects.order_by("-id").first()
    assert (record.state, record.method) == ("withdrawn", "withdrawn_on_request")
    chat.refresh_from_db()
    assert chat.status == "closed"
