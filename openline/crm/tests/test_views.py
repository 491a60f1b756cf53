"""CRM pages over HTTP: Save to CRM form, list, item page, deletion, export."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from openline.consent.models import ConsentRecord
from openline.crm import services
from openline.crm.models import CrmItem
from openline.crm.tests.conftest import PAGE_URL, make_chat

pytestmark = pytest.mark.django_db


def save_url(conversation) -> str:
    return f"/console/crm/conversations/{conversation.pk}/save/"


def test_save_form_is_prefilled_and_shows_where_consent_was_obtained(operator_client, chat):
    response = operator_client.get(save_url(chat))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="Jane Doe"' in html
    assert 'value="Jane.Doe@Example.com"' in html
    assert 'value="+49 30 1234-567"' in html
    assert f"Consent obtained in chat #{chat.pk} on" in html
    assert PAGE_URL.replace("&", "&amp;") in html
    kinds = dict(re.findall(r'<input type="radio" name="kind" value="(\w+)"([^>]*)>', html))
    assert {kind: "checked" in attrs for kind, attrs in kinds.items()} == {
        "lead": True,
        "contact": False,
    }


def test_posting_the_form_saves_and_redirects_to_the_item(operator_client, chat):
    response = operator_client.post(
        save_url(chat),
        {"name": "Jane Doe", "email": "jane.doe@example.com", "phone": "", "kind": "contact"},
    )
    item = CrmItem.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/console/crm/items/{item.pk}/"
    assert item.kind == "contact"
    record = ConsentRecord.objects.get(visitor=chat.visitor, origin="crm")
    assert record.address == f"http://testserver/console/inbox/{chat.pk}/"
    page = operator_client.get(response["Location"]).content.decode()
    assert "Saved to CRM as Contact" in page
    assert "linked to this CRM item" in page


def test_invalid_email_and_phone_are_field_errors(operator_client, chat):
    response = operator_client.post(
        save_url(chat), {"name": "Jane", "email": "jane@", "phone": "abc", "kind": "lead"}
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert "email" in form.errors and "phone" in form.errors
    assert 'role="alert"' in response.content.decode()
    assert not CrmItem.objects.exists()
    assert ConsentRecord.objects.filter(visitor=chat.visitor).count() == 1


def test_another_operators_channel_is_forbidden(chat, other_operator):
    client = Client()
    client.force_login(other_operator)
    assert client.get(save_url(chat)).status_code == 403
    response = client.post(save_url(chat), {"name": "X", "kind": "lead"})
    assert response.status_code == 403
    assert not CrmItem.objects.exists()


def test_unknown_conversation_is_404(operator_client, channel):
    assert operator_client.get("/console/crm/conversations/999999/save/").status_code == 404


def test_form_shows_the_matched_item(operator, operator_client, channel, chat):
    item = services.save_conversation_to_crm(
        actor=operator, conversation=chat, name="Jane Doe", email="jane.doe@example.com"
    ).item
    other = make_chat(channel, email="JANE.DOE@example.com")
    html = operator_client.get(save_url(other)).content.decode()
    assert f'Matches the existing <a href="/console/crm/items/{item.pk}/">' in html
    assert "email" in html
    response = operator_client.post(
        save_url(other), {"email": "JANE.DOE@example.com", "kind": "lead"}, follow=True
    )
    assert f"Linked to the existing Lead #{item.pk} (matched by email" in response.content.decode()
    assert CrmItem.objects.count() == 1


def test_item_page_shows_conversations_and_both_consent_records(operator, operator_client, chat):
    item = services.save_conversation_to_crm(
        actor=operator, conversation=chat, name="Jane Doe"
    ).item
    html = operator_client.get(f"/console/crm/items/{item.pk}/").content.decode()
    assert f"Chat #{chat.pk}" in html
    assert f'href="/console/inbox/{chat.pk}/"' in html
    assert "Website" in html
    assert "View record" not in html  # the registry's record pages are for administrators
    assert f'Consent obtained in <a href="/console/inbox/{chat.pk}/">chat #{chat.pk}</a> on' in html
    assert f"/console/inbox/{chat.pk}/</a>" in html  # the CRM record's address
    assert "Lead #" in html and "Saved to CRM by an operator" in html


def test_administrator_gets_links_to_the_records(operator, admin_client, chat):
    item = services.save_conversation_to_crm(actor=operator, conversation=chat, name="Jane").item
    html = admin_client.get(f"/console/crm/items/{item.pk}/").content.decode()
    for record in ConsentRecord.objects.filter(visitor=chat.visitor):
        url = f"/console/obtained-consents/{record.uuid}/"
        assert f'href="{url}"' in html
        assert admin_client.get(url).status_code == 200


def test_client_supplied_page_url_never_becomes_a_script_link(operator, admin_client, channel):
    from openline.crm.tests.conftest import accept_consent

    chat = make_chat(channel, name="Mallory")
    chat.page_url = "javascript:alert(1)"
    chat.save()
    accept_consent(chat, address="javascript:alert(document.cookie)")
    item = services.save_conversation_to_crm(
        actor=operator, conversation=chat, name="<b>M</b>"
    ).item
    html = admin_client.get(f"/console/crm/items/{item.pk}/").content.decode()
    assert 'href="javascript:' not in html
    assert "<b>M</b>" not in html and "&lt;b&gt;M&lt;/b&gt;" in html


def test_operator_sees_only_their_channels_items(chat, operator, other_operator):
    item = services.save_conversation_to_crm(actor=operator, conversation=chat, name="Jane").item
    client = Client()
    client.force_login(other_operator)
    assert client.get(f"/console/crm/items/{item.pk}/").status_code == 403
    assert "Jane" not in client.get("/console/crm/items/").content.decode()


def test_list_search_filters_and_keyset_pagination(operator, operator_client, channel, chat):
    services.save_conversation_to_crm(
        actor=operator, conversation=chat, name="Jane Doe", phone="+49 30 1234-567"
    )
    for i in range(30):
        services.save_conversation_to_crm(
            actor=operator, conversation=make_chat(channel), name=f"Client {i:02d}", kind="contact"
        )

    def names(query: str) -> list[str]:
        response = operator_client.get("/console/crm/items/" + query)
        return [row["item"].name for row in response.context["rows"]]

    assert names("?q=jane") == ["Jane Doe"]
    assert names("?q=JANE.DOE@example") == []  # this Jane gave no email
    assert names("?q=301234") == ["Jane Doe"]  # phone digits
    assert names("?q=%2B49+30+1234") == ["Jane Doe"]
    assert names("?kind=lead") == ["Jane Doe"]
    assert names("?consent=given") == ["Jane Doe"]
    assert "Jane Doe" not in names("?consent=none")
    assert names("?consent=withdrawn") == []
    assert len(names("?consent=none")) == 25  # the 30 clients without consent, first page
    first = operator_client.get("/console/crm/items/?kind=contact")
    assert len(first.context["rows"]) == 25
    assert first.context["newer_url"] == ""
    older = first.context["older_url"]
    assert "kind=contact" in older and "after=" in older
    second = operator_client.get("/console/crm/items/" + older)
    assert [r["item"].name for r in second.context["rows"]] == [
        f"Client {i:02d}" for i in range(4, -1, -1)
    ]
    assert second.context["older_url"] == ""
    back = operator_client.get("/console/crm/items/" + second.context["newer_url"])
    assert [r["item"].pk for r in back.context["rows"]] == [
        r["item"].pk for r in first.context["rows"]
    ]


def test_consent_filter_follows_the_newest_record(operator, operator_client, chat):
    from openline.consent.services import record_consent

    item = services.save_conversation_to_crm(actor=operator, conversation=chat, name="Jane").item
    given = ConsentRecord.objects.filter(visitor=chat.visitor).first()
    record_consent(
        visitor=chat.visitor,
        version=given.version,
        language="en",
        state="withdrawn",
        method="withdrawn_by_client",
        origin="livechat",
        source_type="website",
        channel=chat.channel,
        conversation=chat,
    )
    rows = operator_client.get("/console/crm/items/?consent=withdrawn").context["rows"]
    assert [r["item"] for r in rows] == [item]
    assert rows[0]["consent_state"] == "withdrawn"
    assert operator_client.get("/console/crm/items/?consent=given").context["rows"] == []


def test_delete_confirmation_then_second_attempt_says_already_gone(operator, admin_client, chat):
    item = services.save_conversation_to_crm(actor=operator, conversation=chat, name="Jane").item
    url = f"/console/crm/items/{item.pk}/delete/"
    confirm = admin_client.get(url).content.decode()
    assert "Will be removed" in confirm and "2 messages in 1 conversation" in confirm
    assert "2 consent records" in confirm

    response = admin_client.post(url, follow=True)
    assert "2 consent records kept as proof" in response.content.decode()

    # The kept records now show the client as "Deleted client" with the pseudonymous id.
    registry = admin_client.get("/console/obtained-consents/").content.decode()
    chat.visitor.refresh_from_db()
    assert registry.count(f"Deleted client {str(chat.visitor.public_id)[:8]}") == 2
    assert "Jane" not in registry

    again = admin_client.post(url)
    assert again.status_code == 410
    assert "already gone" in again.content.decode()
    gone = admin_client.get(f"/console/crm/items/{item.pk}/")
    assert gone.status_code == 410 and "already gone" in gone.content.decode()
    # The chat itself can no longer be saved to the CRM: the form says why.
    refused = admin_client.post(save_url(chat), {"name": "Jane", "kind": "lead"})
    assert refused.status_code == 200
    assert "data was deleted" in refused.content.decode()


def test_operator_cannot_open_delete_for_a_consented_client(operator, operator_client, chat):
    item = services.save_conversation_to_crm(actor=operator, conversation=chat, name="Jane").item
    assert operator_client.get(f"/console/crm/items/{item.pk}/delete/").status_code == 403
    assert operator_client.post(f"/console/crm/items/{item.pk}/delete/").status_code == 403
    assert CrmItem.objects.filter(pk=item.pk).exists()


def test_export_downloads_json(operator, admin_client, operator_client, chat):
    item = services.save_conversation_to_crm(actor=operator, conversation=chat, name="Jane").item
    response = admin_client.get(f"/console/crm/items/{item.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment;" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["crm_item"]["id"] == item.pk and len(data["consent_records"]) == 2
    assert operator_client.get(f"/console/crm/items/{item.pk}/export/").status_code == 403


def test_notes_convert_and_edit_over_http(operator, operator_client, chat):
    item = services.save_conversation_to_crm(actor=operator, conversation=chat, name="Jane").item
    base = f"/console/crm/items/{item.pk}/"
    operator_client.post(base + "notes/", {"text": "<b>VIP</b>"})
    operator_client.post(base + "convert/")
    bad = operator_client.post(base + "edit/", {"name": "Jane", "emails": "x@", "phones": ""})
    assert "emails" in bad.context["form"].errors
    operator_client.post(
        base + "edit/", {"name": "Jane D.", "emails": "j@example.com", "phones": ""}
    )
    html = operator_client.get(base).content.decode()
    assert "&lt;b&gt;VIP&lt;/b&gt;" in html  # client-facing text is escaped
    assert "Converted to contact" in html and "Note added" in html
    assert "Name: Jane → Jane D." in html
    assert "Kind: Lead → Contact" in html
    item.refresh_from_db()
    assert item.kind == "contact" and item.name == "Jane D."
