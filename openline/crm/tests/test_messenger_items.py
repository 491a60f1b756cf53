"""A messenger client's first message saves them in the CRM, once."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from openline.conversations.inbound import ClientRef, SourceRef, get_or_create_client
from openline.conversations.models import Visitor
from openline.crm import services
from openline.crm.messenger import ensure_client_item, item_source
from openline.crm.models import ChangeAction, CrmChange, CrmIdentity, CrmItem, CrmVisitor
from openline.openchannels.services import create_open_channel


def tg_client(channel, external_id="111222333", name="Ivan Petrov", **extra):
    return get_or_create_client(
        channel=channel,
        kind="telegram",
        client=ClientRef(external_id=external_id, name=name, **extra),
    )


def test_first_message_saves_a_lead_named_from_the_profile(channel, operator):
    visitor = tg_client(channel)

    item = ensure_client_item(channel=channel, visitor=visitor)

    assert item.kind == "lead" and item.name == "Ivan Petrov"
    assert item.source_channel == channel and item.responsible is None
    assert list(item.identities.values_list("kind", "value")) == [
        ("messenger", "telegram:111222333")
    ]
    assert CrmVisitor.objects.get(visitor=visitor).item == item
    change = CrmChange.objects.get(item=item)
    assert change.action == ChangeAction.CREATED
    assert change.actor is None and change.actor_label == "Openline"
    assert change.changes["messenger"] == "telegram"
    # The channel's operator finds the client in the CRM before any chat is saved.
    assert services.can_see_item(operator, item)


def test_second_message_returns_the_same_item(channel):
    visitor = tg_client(channel)
    first = ensure_client_item(channel=channel, visitor=visitor)
    again = ensure_client_item(channel=channel, visitor=tg_client(channel))

    assert again == first
    assert CrmItem.objects.count() == 1 and CrmChange.objects.count() == 1


def test_contact_when_the_channel_saves_contacts(administrator, operator, agreement):
    shop = create_open_channel(
        actor=administrator, name="Shop bot", operators=[operator], crm_item_kind="contact"
    )
    item = ensure_client_item(channel=shop, visitor=tg_client(shop))
    assert item.kind == "contact"


def test_without_a_profile_name_the_item_is_named_after_the_platform_user(channel):
    visitor = tg_client(channel, external_id="555000111", name="")
    item = ensure_client_item(channel=channel, visitor=visitor)
    assert item.name == "Telegram user 555000111"


def test_whatsapp_gives_the_phone_too(channel):
    visitor = get_or_create_client(
        channel=channel,
        kind="whatsapp",
        client=ClientRef(external_id="4915112345678", name="Wanda", phone="+49 151 12345678"),
    )
    item = ensure_client_item(channel=channel, visitor=visitor)
    assert set(item.identities.values_list("kind", "value")) == {
        ("messenger", "whatsapp:4915112345678"),
        ("phone", "4915112345678"),
    }
    assert item.name == "Wanda"


def test_same_platform_user_on_another_channel_gets_an_item_of_that_channel(
    administrator, operator, other_operator, channel
):
    item = ensure_client_item(channel=channel, visitor=tg_client(channel))
    second = create_open_channel(actor=administrator, name="Bot 2", operators=[other_operator])
    visitor = tg_client(second)

    other = ensure_client_item(channel=second, visitor=visitor)
    # Another Open Channel's item (its history, notes, operators) is never handed over.
    assert other != item and other.source_channel == second
    assert CrmVisitor.objects.get(visitor=visitor).item == other
    assert not CrmChange.objects.filter(item=item, action=ChangeAction.UPDATED).exists()
    assert services.can_see_item(other_operator, other)
    assert not services.can_see_item(other_operator, item)


def wa_client(channel, name="Wanda"):
    return get_or_create_client(
        channel=channel,
        kind="whatsapp",
        client=ClientRef(external_id="4915112345678", name=name, phone="+49 151 12345678"),
    )


def test_a_whatsapp_phone_known_on_another_channel_is_not_matched(
    administrator, other_operator, channel
):
    first = ensure_client_item(channel=channel, visitor=wa_client(channel))
    second = create_open_channel(actor=administrator, name="WA 2", operators=[other_operator])

    item = ensure_client_item(channel=second, visitor=wa_client(second, name="Someone else"))
    assert item != first and item.name == "Someone else"
    assert CrmVisitor.objects.filter(item=first).count() == 1


def test_a_phone_on_an_item_of_the_same_channel_is_matched(administrator, channel):
    # This channel's live chat client, saved to the CRM with the same phone earlier.
    earlier = CrmItem.objects.create(kind="contact", name="Wanda W.", source_channel=channel)
    CrmIdentity.objects.create(item=earlier, kind="phone", value="4915112345678", display="+49")
    item = ensure_client_item(channel=channel, visitor=wa_client(channel))
    assert item == earlier
    assert CrmChange.objects.filter(item=earlier, action=ChangeAction.UPDATED).exists()


def test_live_chat_visitors_are_not_messenger_clients(channel):
    visitor = Visitor.objects.create(origin="livechat", channel=channel, name="Web")
    with pytest.raises(ValueError):
        ensure_client_item(channel=channel, visitor=visitor)


def test_item_source_names_the_item_without_personal_data(channel):
    item = ensure_client_item(channel=channel, visitor=tg_client(channel))
    source = item_source(item)
    assert source == SourceRef(type="crm_item", id=str(item.pk), label=f"Lead #{item.pk}")
    assert "Ivan" not in source.label


@pytest.mark.django_db(transaction=True)
def test_two_processes_create_one_item(postgres_only, channel):
    visitor = tg_client(channel)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def first_message():
        try:
            barrier.wait(timeout=10)
            results.append(ensure_client_item(channel=channel, visitor=visitor).pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_message) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert CrmItem.objects.count() == 1
    assert results == [CrmItem.objects.get().pk] * 4
    assert CrmIdentity.objects.count() == 1
    assert CrmChange.objects.count() == 1
