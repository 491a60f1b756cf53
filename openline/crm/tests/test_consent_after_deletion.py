"""After Delete client data, the chat keeps showing the consent records kept as proof."""

from __future__ import annotations

import re

import pytest

from openline.consent.models import ConsentRecord
from openline.conversations.consent_panel import consent_panel
from openline.conversations.models import Conversation
from openline.crm import services
from openline.openchannels.services import create_open_channel

pytestmark = pytest.mark.django_db


def _consent_section(html: str) -> str:
    match = re.search(r'<section[^>]*aria-labelledby="cp-consent".*?</section>', html, re.S)
    assert match, "the chat has a consent section"
    return match.group(0)


def test_delete_client_data_then_the_chat_still_shows_the_kept_records(
    operator, admin_client, chat
):
    # The page the client was on may carry personal data in its query.
    Conversation.objects.filter(pk=chat.pk).update(
        page_url="https://shop.example/checkout?email=jane%40example.com"
    )
    item = services.save_conversation_to_crm(
        actor=operator, conversation=chat, name="Jane Doe", email="jane@example.com"
    ).item
    records = list(ConsentRecord.objects.filter(visitor=chat.visitor).order_by("-id"))
    assert len(records) == 2  # the client's "I accept" and the CRM link

    response = admin_client.post(f"/console/crm/items/{item.pk}/delete/", follow=True)
    assert "2 consent records kept as proof" in response.text

    conversation = Conversation.objects.select_related("visitor", "channel").get(pk=chat.pk)
    panel = consent_panel(conversation)
    assert panel["erased"] is True and panel["asked"] is True
    assert panel["state"] == "given" and panel["current"] == records[0]
    assert panel["records"] == records

    page = admin_client.get(f"/console/inbox/{chat.pk}/").text
    consent = _consent_section(page)
    assert "No consent recorded" not in consent
    assert "Consent given" in consent
    for record in records:
        assert f"/console/obtained-consents/{record.uuid}/" in consent
    assert "Client data deleted" in page
    assert "Jane" not in page and "jane@example.com" not in page
    assert "checkout?email" not in page and conversation.page_url == ""
    transcript = admin_client.get(f"/console/transcripts/{chat.pk}/").text
    assert "checkout?email" not in transcript and "Jane" not in transcript
    assert f"Deleted client {str(chat.visitor.public_id)[:8]}" in page


def test_a_withdrawal_stays_the_state_after_deletion(operator, administrator, chat):
    from openline.consent.models import ConsentOrigin, SourceType
    from openline.consent.services import withdraw_consent
    from openline.crm.deletion import delete_client_data

    item = services.save_conversation_to_crm(actor=operator, conversation=chat, name="Jane").item
    withdrawn = withdraw_consent(
        visitor=chat.visitor,
        agreement=chat.channel.agreement,
        origin=ConsentOrigin.LIVECHAT,
        source_type=SourceType.WEBSITE,
        channel=chat.channel,
        conversation=chat,
    )
    delete_client_data(actor=administrator, item_id=item.pk)

    panel = consent_panel(Conversation.objects.get(pk=chat.pk))
    assert panel["state"] == "withdrawn" and panel["current"] == withdrawn
    assert panel["records"][0] == withdrawn and len(panel["records"]) == 3


def test_records_of_another_channel_stay_out(administrator, operator, agreement, chat):
    other = create_open_channel(
        actor=administrator, name="Shop B", operators=[operator], connectors=["livechat"]
    )
    from openline.crm.tests.conftest import make_chat

    elsewhere = make_chat(other)
    panel = consent_panel(elsewhere)
    assert panel["records"] == [] and panel["state"] == "none" and panel["current"] is None
    assert panel["asked"] is False and panel["erased"] is False
    assert len(consent_panel(chat)["records"]) == 1
