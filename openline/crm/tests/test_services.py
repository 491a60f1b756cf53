"""CRM services: Save to CRM, matching, conversion, notes, deletion and subject access."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import model_to_dict

from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Message, Visitor
from openline.crm import services
from openline.crm.models import ChangeAction, CrmErasure, CrmIdentity, CrmItem, IdentityKind
from openline.crm.tests.conftest import PAGE_URL, accept_consent, make_chat

pytestmark = pytest.mark.django_db


def save(actor, conversation, **kwargs):
    kwargs.setdefault("name", conversation.visitor.name)
    kwargs.setdefault("email", conversation.visitor.email)
    kwargs.setdefault("phone", conversation.visitor.phone)
    return services.save_conversation_to_crm(
        actor=actor, conversation=conversation, base_url="https://openline.example.com", **kwargs
    )


# ----- Save to CRM and the consent link ----------------------------------------------------


def test_save_to_crm_creates_a_lead_with_normalised_identities(operator, chat):
    result = save(operator, chat)

    item = result.item
    assert result.created and not result.already_saved
    assert item.kind == "lead"  # the channel's "Save new clients to CRM as"
    assert item.name == "Jane Doe"
    assert item.source_channel == chat.channel
    assert item.responsible == operator
    identities = {(i.kind, i.value, i.display) for i in item.identities.all()}
    assert identities == {
        ("email", "jane.doe@example.com", "Jane.Doe@Example.com"),
        ("phone", "49301234567", "+49 30 1234-567"),
    }
    assert list(item.visitor_links.values_list("visitor", flat=True)) == [chat.visitor_id]
    assert list(item.conversation_links.values_list("conversation", flat=True)) == [chat.pk]
    assert [c.action for c in item.changes.order_by("id")] == [
        ChangeAction.CREATED,
        ChangeAction.CONVERSATION_SAVED,
    ]


def test_channel_saving_clients_as_contacts_creates_a_contact(administrator, operator, chat):
    chat.channel.crm_item_kind = "contact"
    chat.channel.save()
    assert save(operator, chat).item.kind == "contact"


def test_save_to_crm_links_consent_with_a_second_record(operator, chat):
    first = ConsentRecord.objects.get(visitor=chat.visitor)

    result = save(operator, chat)

    records = list(ConsentRecord.objects.filter(visitor=chat.visitor).order_by("id"))
    assert len(records) == 2 and records[0] == first
    second = records[1]
    assert result.consent_records == [second]
    assert first.address == PAGE_URL
    assert second.state == "given"
    assert second.origin == "crm"
    assert second.method == "saved_to_crm"
    assert second.source_type == "crm_item"
    assert second.source_id == str(result.item.pk)
    assert second.source_label == f"Lead #{result.item.pk}"
    assert second.address == f"https://openline.example.com/console/inbox/{chat.pk}/"
    assert second.conversation == chat and second.channel == chat.channel
    assert second.version == first.version and second.language == first.language
    assert second.text_sha256 == first.text_sha256
    assert second.ip is None
    assert second.ip_missing_reason == "Recorded by an operator, not by the client"
    assert second.evidence["operator"] == {
        "id": operator.pk,
        "username": "otto",
        "name": "Otto Operator",
    }
    assert second.evidence["links_record"] == str(first.uuid)


def test_address_uses_the_public_url_setting(settings, operator, chat):
    settings.OPENLINE_PUBLIC_URL = "https://support.example.org"
    services.save_conversation_to_crm(actor=operator, conversation=chat, name="Jane")
    record = ConsentRecord.objects.filter(visitor=chat.visitor, origin="crm").get()
    assert record.address == f"https://support.example.org/console/inbox/{chat.pk}/"


def test_saving_again_does_not_add_a_third_record(operator, chat):
    first = save(operator, chat)
    again = save(operator, chat, name="Jane Q. Doe")

    assert again.already_saved and not again.created and again.item == first.item
    assert again.consent_records == []
    assert ConsentRecord.objects.filter(visitor=chat.visitor).count() == 2
    assert CrmItem.objects.count() == 1
    again.item.refresh_from_db()
    assert again.item.name == "Jane Q. Doe"
    change = again.item.changes.first()
    assert change.action == ChangeAction.UPDATED
    assert change.changes["name"] == ["Jane Doe", "Jane Q. Doe"]


def test_saving_again_as_contact_converts_the_lead(operator, chat):
    lead = save(operator, chat).item
    again = save(operator, chat, kind="contact")
    assert again.item.pk == lead.pk and again.item.kind == "contact"
    assert again.item.changes.filter(action=ChangeAction.CONVERTED).count() == 1
    assert ConsentRecord.objects.filter(visitor=chat.visitor).count() == 2


def test_client_who_never_consented_gets_no_record(operator, silent_chat):
    result = save(operator, silent_chat)

    assert result.created
    assert result.consent_records == []
    assert not ConsentRecord.objects.filter(visitor=silent_chat.visitor).exists()


def test_client_who_withdrew_gets_no_crm_record(operator, chat):
    from openline.consent.services import record_consent

    given = ConsentRecord.objects.get(visitor=chat.visitor)
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
    result = save(operator, chat)
    assert result.consent_records == []
    assert not ConsentRecord.objects.filter(visitor=chat.visitor, origin="crm").exists()


def test_operator_of_another_channel_cannot_save(other_operator, chat):
    with pytest.raises(PermissionDenied):
        save(other_operator, chat)
    assert not CrmItem.objects.exists()
    assert ConsentRecord.objects.filter(visitor=chat.visitor).count() == 1


def test_administrator_may_save_any_channel(administrator, chat):
    result = save(administrator, chat)
    assert result.created
    assert result.item.responsible is None  # administrators are not made responsible
    assert result.consent_records[0].evidence["operator"]["username"] == "ada"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "jane@"),
        ("email", "not an email"),
        ("phone", "call me maybe"),
        ("phone", "12"),
        ("phone", "+1 234 567 890 123 456 789"),
    ],
)
def test_invalid_email_or_phone_is_a_field_error_and_saves_nothing(operator, chat, field, value):
    with pytest.raises(ValidationError) as exc:
        save(operator, chat, **{field: value})
    assert field in exc.value.message_dict
    assert not CrmItem.objects.exists()
    assert ConsentRecord.objects.filter(visitor=chat.visitor).count() == 1


# ----- matching ----------------------------------------------------------------------------


def test_email_matches_case_insensitively(operator, channel, chat):
    first = save(operator, chat).item
    other = make_chat(channel, name="J. Doe")
    accept_consent(other)

    result = save(operator, other, email="  JANE.DOE@example.COM ", phone="")

    assert not result.created
    assert result.item == first
    assert result.match.matched_by == "email"
    assert "jane.doe@example.com" in result.match.description.lower()
    assert CrmItem.objects.count() == 1
    assert set(first.visitor_links.values_list("visitor", flat=True)) == {
        chat.visitor_id,
        other.visitor_id,
    }
    # The second visitor's own consent is linked to the same item.
    linked = ConsentRecord.objects.get(visitor=other.visitor, origin="crm")
    assert linked.source_id == str(first.pk)


def test_phone_matches_by_digits(operator, channel, chat):
    first = save(operator, chat).item
    other = make_chat(channel)

    result = save(operator, other, email="", phone="(+49) 30/123 45 67")

    assert result.item == first and result.match.matched_by == "phone"


def test_messenger_identity_matches(administrator, operator, channel):
    tg = make_chat(channel, origin="telegram", external_id="777001")
    item = services.link_messenger_client(conversation=tg, name="Tom")
    assert item.identities.get().value == "telegram:777001"

    # One profile per messenger user per channel: the same bot user writing to another
    # Open Channel is a second visitor, matched by the messenger identity.
    from openline.openchannels.services import create_open_channel

    second = create_open_channel(
        actor=administrator, name="Second bot", operators=[operator], connectors=["livechat"]
    )
    again = make_chat(second, origin="telegram", external_id="777001")
    result = save(operator, again, email="tom@example.com")

    assert result.item == item and result.match.matched_by == "messenger"
    assert set(item.identities.values_list("kind", flat=True)) == {"messenger", "email"}
    # A different platform with the same user id is a different client.
    wa = make_chat(channel, origin="whatsapp", external_id="777001")
    assert services.link_messenger_client(conversation=wa) != item


def test_preview_shows_the_operator_which_item_matches(operator, channel, chat):
    item = save(operator, chat).item
    other = make_chat(channel)
    match = services.preview_match(conversation=other, phone="+49 30 1234567")
    assert match.item == item and match.matched_by == "phone"
    assert services.preview_match(conversation=other, phone="+1 555 0100 999") is None
    # Invalid input does not break the preview.
    assert services.preview_match(conversation=other, email="nope@") is None


def test_identity_owned_by_another_item_is_not_stolen(operator, channel, chat):
    jane = save(operator, chat).item
    bob_chat = make_chat(channel)
    bob = save(operator, bob_chat, name="Bob", email="bob@example.com", phone="").item
    with pytest.raises(ValidationError) as exc:
        services.update_item(
            actor=operator,
            item=bob,
            name="Bob",
            responsible=None,
            emails=["bob@example.com", "JANE.DOE@example.com"],
            phones=[],
        )
    assert f"already belongs to Lead #{jane.pk}" in exc.value.message_dict["emails"][0]
    assert CrmIdentity.objects.get(value="jane.doe@example.com").item == jane


# ----- editing, conversion, notes ------------------------------------------------------------


def test_conversion_keeps_links_identities_notes_and_consents(operator, chat):
    lead = save(operator, chat).item
    services.add_note(actor=operator, item=lead, text="Wants the pro plan")
    record_ids = set(
        ConsentRecord.objects.filter(visitor=chat.visitor).values_list("pk", flat=True)
    )

    contact = services.convert_to_contact(actor=operator, item=lead)

    assert contact.pk == lead.pk and contact.kind == "contact" and contact.converted_at
    assert contact.label == f"Contact #{lead.pk}"
    assert contact.identities.count() == 2
    assert list(contact.conversation_links.values_list("conversation", flat=True)) == [chat.pk]
    assert contact.notes.get().text == "Wants the pro plan"
    assert set(ConsentRecord.objects.filter(visitor=chat.visitor).values_list("pk", flat=True)) == (
        record_ids
    )
    assert contact.changes.first().action == ChangeAction.CONVERTED
    with pytest.raises(ValidationError):
        services.convert_to_contact(actor=operator, item=contact)


def test_update_is_kept_in_the_change_history(operator, administrator, chat):
    item = save(operator, chat).item
    services.update_item(
        actor=administrator,
        item=item,
        name="Jane Doe-Smith",
        responsible=administrator,
        emails=["jane@work.example"],
        phones=["+49 30 1234-567"],
    )
    change = item.changes.first()
    assert change.action == ChangeAction.UPDATED and change.actor_label == "Ada Administrator"
    assert change.changes["name"] == ["Jane Doe", "Jane Doe-Smith"]
    assert change.changes["emails"] == [["Jane.Doe@Example.com"], ["jane@work.example"]]
    assert change.changes["responsible"] == ["Otto Operator", "Ada Administrator"]
    assert "phones" not in change.changes
    assert set(item.identities.filter(kind=IdentityKind.EMAIL).values_list("value", flat=True)) == {
        "jane@work.example"
    }
    with pytest.raises(ValueError):
        change.save()  # the history is append-only


def test_empty_note_is_refused(operator, chat):
    item = save(operator, chat).item
    with pytest.raises(ValidationError):
        services.add_note(actor=operator, item=item, text="   ")
    assert not item.notes.exists()


# ----- deletion ------------------------------------------------------------------------------


def _registry_snapshot(visitor):
    return [model_to_dict(r) for r in ConsentRecord.objects.filter(visitor=visitor).order_by("id")]


def test_delete_client_data_keeps_consent_records_and_the_registry_verifies(
    administrator, operator, chat, capsys
):
    from django.core.management import call_command

    item = save(operator, chat).item
    Conversation.objects.filter(pk=chat.pk).update(last_message_preview="My number is +49…")
    call_command("consent_seal")  # seal the two records, so verification covers them
    services.add_note(actor=operator, item=item, text="Call back on Monday")
    before = _registry_snapshot(chat.visitor)
    assert len(before) == 2

    erasure = services.delete_client_data(actor=administrator, item_id=item.pk)

    assert not CrmItem.objects.filter(pk=item.pk).exists()
    assert not CrmIdentity.objects.exists()
    assert not Message.objects.filter(conversation=chat).exists()
    closed = Conversation.objects.get(pk=chat.pk)
    assert closed.last_message_preview == ""
    assert closed.status == "closed" and closed.closed_reason == "The client's data was deleted"
    visitor = Visitor.objects.get(pk=chat.visitor_id)
    assert (
        visitor.name,
        visitor.email,
        visitor.phone,
        visitor.external_id,
        visitor.user_agent,
    ) == (
        "",
        "",
        "",
        "",
        "",
    )
    assert visitor.erased_at is not None
    assert str(visitor) == f"Deleted client {str(visitor.public_id)[:8]}"
    # Consent records are the company's proof: untouched, byte for byte.
    assert _registry_snapshot(visitor) == before
    assert erasure.counts == {
        "visitors": 1,
        "conversations": 1,
        "messages": 2,
        "identities": 2,
        "notes": 1,
        "consent_records_kept": 2,
    }
    assert erasure.visitor_public_ids == [str(visitor.public_id)]
    assert erasure.item_label == f"Lead #{item.pk}"
    assert "Jane" not in str(model_to_dict(erasure))
    call_command("consent_verify")
    assert "Consent registry verified" in capsys.readouterr().out


def test_deleting_twice_says_it_is_already_gone(administrator, operator, chat):
    item = save(operator, chat).item
    first = services.delete_client_data(actor=administrator, item_id=item.pk)
    with pytest.raises(services.AlreadyDeleted) as exc:
        services.delete_client_data(actor=administrator, item_id=item.pk)
    assert exc.value.erasure == first
    assert CrmErasure.objects.count() == 1


def test_a_deleted_clients_chat_cannot_be_saved_again(administrator, operator, chat):
    item = save(operator, chat).item
    services.delete_client_data(actor=administrator, item_id=item.pk)
    chat.refresh_from_db()
    with pytest.raises(ValidationError) as exc:
        save(operator, chat, name="Jane", email="jane@example.com", phone="")
    assert "data was deleted" in exc.value.messages[0]
    assert not CrmItem.objects.exists()
    assert ConsentRecord.objects.filter(visitor=chat.visitor).count() == 2


def test_operator_cannot_delete_a_client_who_consented(operator, chat):
    item = save(operator, chat).item
    assert not services.can_delete(operator, item)
    with pytest.raises(PermissionDenied):
        services.delete_client_data(actor=operator, item_id=item.pk)
    assert CrmItem.objects.filter(pk=item.pk).exists()
    assert Message.objects.filter(conversation=chat).count() == 2


def test_operator_may_delete_an_unconfirmed_messenger_client(operator, other_operator, channel):
    tg = make_chat(channel, origin="telegram", external_id="55501", texts=["/start"])
    item = services.link_messenger_client(conversation=tg, name="Unconfirmed")
    assert services.can_delete(operator, item)
    assert not services.can_delete(other_operator, item)  # not their channel

    services.delete_client_data(actor=operator, item_id=item.pk)

    assert not CrmItem.objects.filter(pk=item.pk).exists()
    assert Visitor.objects.get(pk=tg.visitor_id).external_id == ""


# ----- subject access export -----------------------------------------------------------------


def test_subject_access_export_holds_everything_about_the_client(administrator, operator, chat):
    item = save(operator, chat).item
    services.add_note(actor=operator, item=item, text="Prefers email")

    data = services.subject_access_export(actor=administrator, item=item)

    assert data["format"] == "openline-subject-access/1"
    assert data["crm_item"]["id"] == item.pk
    assert data["crm_item"]["name"] == "Jane Doe"
    assert data["crm_item"]["emails"] == ["Jane.Doe@Example.com"]
    assert data["crm_item"]["phones"] == ["+49 30 1234-567"]
    assert data["crm_item"]["notes"][0]["text"] == "Prefers email"
    assert [h["action"] for h in data["crm_item"]["history"]][:2] == [
        "created",
        "conversation_saved",
    ]
    [visitor] = data["visitors"]
    assert visitor["email"] == "Jane.Doe@Example.com"
    assert visitor["pseudonymous_id"] == str(chat.visitor.public_id)
    [conversation] = data["conversations"]
    assert conversation["id"] == chat.pk and conversation["page_url"] == PAGE_URL
    assert [m["text"] for m in conversation["messages"]] == [
        "Hello, I'd like a quote",
        "My number is +49 30 1234567",
    ]
    records = data["consent_records"]
    assert [r["origin"] for r in records] == ["livechat", "crm"]
    assert records[0]["address"] == PAGE_URL and records[0]["ip"] == "203.0.113.7"
    text = chat.channel.agreement.current_version.texts.get(language="en")
    for record in records:
        assert record["text_shown"]["text"] == text.text
        assert record["text_shown"]["html"] == text.rendered_html
        assert record["text_sha256"] == text.sha256
    import json

    json.dumps(data)  # serialisable as it is
