"""Save to CRM reuses only items the acting operator may see; a clash becomes a new item and a note.

Otto answers the Website channel. Olivia answers Shop B, where Jane is a client with her
e-mail, phone, a private note and her full name. When Otto saves his own chat with Jane's
e-mail or phone, he must not gain Jane's item (nor learn its name), and the people who may
see Jane's item are told that a possible duplicate exists.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from openline.crm import services
from openline.crm.models import CrmConversation, CrmIdentity, CrmItem, CrmNote
from openline.crm.tests.conftest import make_chat
from openline.openchannels.services import create_open_channel

SECRET_NAME = "Jane Secretname"
SECRET_NOTE = "Gets the staff discount, never call before noon"


@pytest.fixture
def shop_b(administrator, other_operator):
    return create_open_channel(
        actor=administrator, name="Shop B", operators=[other_operator], connectors=["livechat"]
    )


@pytest.fixture
def janes_item(shop_b, other_operator):
    """Jane's item in Shop B, saved by Olivia, with a private note."""
    chat = make_chat(shop_b, name=SECRET_NAME, texts=["Hi"])
    result = services.save_conversation_to_crm(
        actor=other_operator,
        conversation=chat,
        name=SECRET_NAME,
        email="jane@example.com",
        phone="+49 30 1234567",
    )
    services.add_note(actor=other_operator, item=result.item, text=SECRET_NOTE)
    return result.item


@pytest.fixture
def ottos_chat(channel):
    return make_chat(channel, name="", texts=["Hello, it's me"])


def _save_in_console(client: Client, conversation, **fields):
    data = {"name": "", "email": "", "phone": "", "kind": "lead", **fields}
    return client.post(f"/console/crm/conversations/{conversation.pk}/save/", data, follow=True)


def _nothing_of_janes_item_in(text: str, item: CrmItem) -> None:
    assert SECRET_NAME not in text
    assert SECRET_NOTE not in text
    # Not even its label ("Lead #12") or a link to it.
    assert re.search(rf"\b{re.escape(item.label)}(?!\d)", text) is None
    assert f"/crm/items/{item.pk}/" not in text


@pytest.mark.parametrize(
    "fields",
    [{"email": "JANE@example.com"}, {"phone": "+49 (30) 123-4567"}],
    ids=["email", "phone"],
)
def test_operator_saving_another_channels_email_or_phone_gets_a_new_item_not_access(
    operator_client, operator, channel, ottos_chat, janes_item, fields
):
    response = _save_in_console(operator_client, ottos_chat, **fields)
    assert response.status_code == 200
    _nothing_of_janes_item_in(response.text, janes_item)

    link = CrmConversation.objects.select_related("item").get(conversation=ottos_chat)
    assert link.item != janes_item
    assert link.item.source_channel == channel
    assert not services.can_see_item(operator, janes_item)
    assert operator_client.get(f"/console/crm/items/{janes_item.pk}/").status_code == 403
    # Jane's identities stay hers and are not copied onto Otto's item.
    assert set(janes_item.identities.values_list("kind", flat=True)) == {"email", "phone"}
    assert not link.item.identities.filter(kind__in=["email", "phone"]).exists()
    # Otto is told his input was not added, without learning whose it is.
    assert "Not added" in response.text and "an administrator was told" in response.text


def test_the_clash_leaves_a_possible_duplicate_note_for_those_who_may_see_janes_item(
    operator_client, admin_client, ottos_chat, janes_item
):
    _save_in_console(operator_client, ottos_chat, email="jane@example.com")
    new_item = CrmConversation.objects.get(conversation=ottos_chat).item
    note = CrmNote.objects.filter(item=janes_item, author=None).get()
    assert f"{new_item.label}" in note.text and "Possible duplicate" in note.text
    assert "Website" in note.text
    # The administrator sees the note on Jane's item; nothing about it lands on Otto's item.
    assert "Possible duplicate" in admin_client.get(f"/console/crm/items/{janes_item.pk}/").text
    ottos_page = operator_client.get(f"/console/crm/items/{new_item.pk}/").text
    _nothing_of_janes_item_in(ottos_page, janes_item)


def test_the_save_form_preview_does_not_name_an_item_the_operator_cannot_see(
    operator_client, ottos_chat, janes_item
):
    page = operator_client.get(f"/console/crm/conversations/{ottos_chat.pk}/save/")
    assert page.status_code == 200
    preview = operator_client.post(
        f"/console/crm/conversations/{ottos_chat.pk}/save/",
        {"name": "", "email": "not an email", "phone": "+49 30 1234567", "kind": "lead"},
    )
    assert preview.status_code == 200  # invalid e-mail: the form is shown again with the preview
    _nothing_of_janes_item_in(preview.text, janes_item)
    assert (
        services.preview_match(
            conversation=ottos_chat,
            phone="+49 30 1234567",
            actor=ottos_chat.channel.operators.get(),
        )
        is None
    )


def test_api_save_by_an_operator_does_not_match_an_invisible_item(
    operator_client, ottos_chat, janes_item
):
    response = operator_client.post(
        f"/api/v1/crm/conversations/{ottos_chat.pk}/save",
        data=json.dumps({"email": "jane@example.com", "phone": "+49 30 1234567"}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True and body["matched_by"] is None
    assert body["item"]["id"] != janes_item.pk
    _nothing_of_janes_item_in(response.text, janes_item)


def test_editing_an_item_to_a_hidden_email_does_not_name_the_other_item(
    operator, operator_client, ottos_chat, janes_item
):
    mine = services.save_conversation_to_crm(actor=operator, conversation=ottos_chat).item
    response = operator_client.post(
        f"/console/crm/items/{mine.pk}/edit/",
        {"name": "Someone", "responsible": "", "emails": "jane@example.com", "phones": ""},
    )
    assert response.status_code == 200
    assert "already belongs to another client" in response.text
    _nothing_of_janes_item_in(response.text, janes_item)
    assert CrmIdentity.objects.get(value="jane@example.com").item == janes_item


def test_an_operator_still_matches_items_of_their_own_channel(
    operator, channel, ottos_chat, janes_item
):
    first = make_chat(channel, texts=["earlier chat"])
    earlier = services.save_conversation_to_crm(
        actor=operator, conversation=first, email="otto-client@example.com"
    ).item
    result = services.save_conversation_to_crm(
        actor=operator, conversation=ottos_chat, email="otto-client@example.com"
    )
    assert result.item == earlier and result.match.matched_by == "email"
    assert result.held_back == []


def test_an_administrator_may_still_link_across_channels(administrator, ottos_chat, janes_item):
    result = services.save_conversation_to_crm(
        actor=administrator, conversation=ottos_chat, email="jane@example.com"
    )
    assert result.item == janes_item and result.match.matched_by == "email"
    assert not CrmNote.objects.filter(item=janes_item, author=None).exists()
