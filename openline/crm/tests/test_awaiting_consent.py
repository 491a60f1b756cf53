"""The Awaiting consent page: unconfirmed messenger clients, and deleting their data."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from openline.consent.models import (
    ConsentMethod,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
    SourceType,
)
from openline.consent.services import record_consent
from openline.conversations.models import Message, Visitor
from openline.crm import awaiting
from openline.crm.models import CrmErasure, CrmItem, CrmVisitor
from openline.crm.tests.messenger_helpers import awaiting_client
from openline.openchannels.services import create_open_channel

URL = "/console/crm/awaiting/"
DELETE_URL = "/console/crm/awaiting/delete/"


@pytest.fixture
def other_channel(administrator, other_operator, agreement):
    return create_open_channel(
        actor=administrator,
        name="Other bot",
        operators=[other_operator],
        consent_enabled=True,
        agreement=agreement,
    )


def confirm(visitor):
    """The client wrote again after the warning: consent given (as the inbound flow records)."""
    channel = visitor.channel
    record = record_consent(
        visitor=visitor,
        version=channel.agreement.current_version,
        language="en",
        state=ConsentState.GIVEN,
        method=ConsentMethod.CONTINUED_CHATTING,
        origin=ConsentOrigin.TELEGRAM,
        source_type=SourceType.CRM_ITEM,
        source_label="Lead",
        address="",
        ip="",
        ip_missing_reason="A messenger does not tell the client's IP address",
        user_agent="",
        channel=channel,
        evidence={},
    )
    Visitor.objects.filter(pk=visitor.pk).update(awaiting_consent_since=None)
    return record


def test_the_page_lists_only_unconfirmed_messenger_clients(admin_client, channel):
    waiting = awaiting_client(channel, name="Ivan Petrov")
    confirmed = awaiting_client(channel, external_id="999", name="Carla Confirmed")
    confirm(confirmed)
    Visitor.objects.create(origin="livechat", channel=channel, name="Walter Web")

    response = admin_client.get(URL)

    assert response.status_code == 200
    body = response.content.decode()
    assert "Ivan Petrov" in body and "Carla Confirmed" not in body and "Walter Web" not in body
    assert reverse("crm:item", args=[waiting.crm_link.item.pk]) in body
    assert list(response.context["clients"]) == [waiting]
    assert response.context["clients"][0].message_count == 2
    # The navigation links the page next to the CRM entry.
    assert 'href="/console/crm/awaiting/"' in body


def test_operators_see_only_their_channels(operator_client, operator, channel, other_channel):
    mine = awaiting_client(channel, name="Mine Client")
    awaiting_client(other_channel, external_id="2", name="Foreign Client")

    body = operator_client.get(URL).content.decode()
    assert "Mine Client" in body and "Foreign Client" not in body
    assert list(awaiting.awaiting_clients(user=operator)) == [mine]
    # Filtering by a channel they do not answer is refused.
    assert operator_client.get(URL, {"channel": other_channel.pk}).status_code == 403


def test_filter_by_channel(admin_client, channel, other_channel):
    awaiting_client(channel, name="Mine Client")
    awaiting_client(other_channel, external_id="2", name="Foreign Client")

    body = admin_client.get(URL, {"channel": other_channel.pk}).content.decode()
    assert "Foreign Client" in body and "Mine Client" not in body


def test_auditors_may_not_open_the_page(auditor_client):
    assert auditor_client.get(URL).status_code == 403
    assert auditor_client.post(DELETE_URL, {}).status_code == 403


def test_delete_one_client_after_one_confirmation(operator_client, channel):
    ivan = awaiting_client(channel, name="Ivan Petrov")
    keep = awaiting_client(channel, external_id="222", name="Kate Keep")
    item_id = ivan.crm_link.item.pk

    step = operator_client.post(DELETE_URL, {"visitor": [ivan.pk]})

    # The confirmation shows what goes, and nothing is deleted yet.
    assert step.status_code == 200
    body = step.content.decode()
    assert "Ivan Petrov" in body and "2 messages" in body and "Kate Keep" not in body
    assert CrmItem.objects.filter(pk=item_id).exists()

    done = operator_client.post(DELETE_URL, {"visitor": [ivan.pk], "confirm": "yes"})

    assert done.status_code == 302 and done["Location"] == URL
    ivan.refresh_from_db()
    assert ivan.erased_at is not None and ivan.awaiting_consent_since is None
    assert ivan.name == "" and ivan.external_id == ""
    assert not Message.objects.filter(conversation__visitor=ivan).exists()
    assert not CrmItem.objects.filter(pk=item_id).exists()
    erasure = CrmErasure.objects.get(item_id_deleted=item_id)
    assert erasure.visitor_public_ids == [str(ivan.public_id)]
    assert erasure.counts["messages"] == 2 and erasure.counts["reason"] == awaiting.REASON_PAGE
    assert "Ivan" not in str(erasure.counts) and "Ivan" not in erasure.item_label
    # The other client is untouched.
    keep.refresh_from_db()
    assert keep.erased_at is None and keep.crm_link.item.name == "Kate Keep"


def test_delete_many_and_all_listed(admin_client, channel, other_channel):
    a = awaiting_client(channel, external_id="1", name="Anna")
    b = awaiting_client(channel, external_id="2", name="Boris")
    c = awaiting_client(other_channel, external_id="3", name="Chen")

    step = admin_client.post(DELETE_URL, {"visitor": [a.pk, b.pk]})
    assert step.status_code == 200 and len(step.context["previews"]) == 2
    admin_client.post(DELETE_URL, {"visitor": [a.pk, b.pk], "confirm": "yes"})
    assert Visitor.objects.filter(pk__in=[a.pk, b.pk], erased_at__isnull=False).count() == 2
    assert Visitor.objects.get(pk=c.pk).erased_at is None

    # "All listed" on a channel filter confirms exactly the listed clients first.
    step = admin_client.post(DELETE_URL, {"all": "1", "channel": other_channel.pk})
    assert [p.visitor for p in step.context["previews"]] == [c]
    admin_client.post(
        DELETE_URL, {"visitor": [c.pk], "channel": other_channel.pk, "confirm": "yes"}
    )
    assert Visitor.objects.get(pk=c.pk).erased_at is not None
    assert CrmItem.objects.count() == 0 and CrmErasure.objects.count() == 3


def test_confirmed_clients_are_refused(admin_client, channel):
    carla = awaiting_client(channel, name="Carla Confirmed")
    confirm(carla)
    # Even if someone crafts the request, and even if the page flag came back.
    Visitor.objects.filter(pk=carla.pk).update(awaiting_consent_since=timezone.now())

    response = admin_client.post(DELETE_URL, {"visitor": [carla.pk], "confirm": "yes"})

    assert response.status_code == 302
    carla.refresh_from_db()
    assert carla.erased_at is None and carla.crm_link.item.name == "Carla Confirmed"
    assert Message.objects.filter(conversation__visitor=carla).count() == 2
    with pytest.raises(Exception, match="gave consent"):
        awaiting.delete_client_data(actor=None, visitor=carla, reason="test")
    assert ConsentRecord.objects.filter(visitor=carla).count() == 1


def test_operator_cannot_delete_another_channels_client(operator_client, other_channel):
    foreign = awaiting_client(other_channel, external_id="3", name="Chen")
    response = operator_client.post(DELETE_URL, {"visitor": [foreign.pk], "confirm": "yes"})
    assert response.status_code == 403
    assert Visitor.objects.get(pk=foreign.pk).erased_at is None


def test_deleting_needs_the_csrf_token(operator, channel):
    ivan = awaiting_client(channel)
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(DELETE_URL, {"visitor": [ivan.pk], "confirm": "yes"})
    assert response.status_code == 403
    assert Visitor.objects.get(pk=ivan.pk).erased_at is None


def test_empty_selection_changes_nothing(admin_client, channel):
    ivan = awaiting_client(channel)
    response = admin_client.post(DELETE_URL, {})
    assert response.status_code == 302
    assert Visitor.objects.get(pk=ivan.pk).erased_at is None


def test_an_item_shared_with_a_confirmed_client_stays(admin_client, administrator, channel):
    """The same person confirmed on another channel: only this client's traces go."""
    other = create_open_channel(actor=administrator, name="Bot 2")
    confirmed = awaiting_client(other, name="Ivan Petrov", since=timezone.now())
    item = confirmed.crm_link.item
    Visitor.objects.filter(pk=confirmed.pk).update(awaiting_consent_since=None)
    waiting = awaiting_client(
        channel, name="Ivan Petrov", since=timezone.now() - dt.timedelta(days=1), with_item=False
    )
    # Items are matched within one channel only; an operator linked this client by hand.
    CrmVisitor.objects.create(item=item, visitor=waiting)

    awaiting.delete_client_data(actor=administrator, visitor=waiting, reason="test")

    assert CrmItem.objects.filter(pk=item.pk).exists()
    assert not item.visitor_links.filter(visitor=waiting).exists()
    assert item.visitor_links.filter(visitor=confirmed).exists()
    assert Visitor.objects.get(pk=waiting.pk).erased_at is not None


def test_nothing_queued_is_sent_to_a_deleted_client(administrator, channel):
    from openline.conversations import outbox
    from openline.conversations.models import OutboxItem, OutboxState

    ivan = awaiting_client(channel)
    item = outbox.enqueue(conversation=ivan.conversations.get(), text="Thanks, Ivan!")
    assert item.state == OutboxState.PENDING

    awaiting.delete_client_data(actor=administrator, visitor=ivan, reason="test")

    item = OutboxItem.objects.get(pk=item.pk)
    assert item.state == OutboxState.FAILED and item.permanent


def test_a_client_rewarned_for_a_new_version_is_listed_and_deletable(
    admin_client, administrator, channel
):
    """Consent only to an older version is not consent now: the client awaits again."""
    from openline.consent.services import update_agreement

    vera = awaiting_client(channel, name="Vera Earlier")
    confirm(vera)
    # While her consent to the current version is in force she is neither listed nor deletable.
    Visitor.objects.filter(pk=vera.pk).update(awaiting_consent_since=timezone.now())
    assert admin_client.get(URL).context["clients"] == []
    with pytest.raises(Exception, match="gave consent"):
        awaiting.delete_client_data(actor=administrator, visitor=vera, reason="page")

    update_agreement(actor=administrator, agreement=channel.agreement, texts={"en": "New wording."})

    assert [v.pk for v in admin_client.get(URL).context["clients"]] == [vera.pk]
    awaiting.delete_client_data(actor=administrator, visitor=vera, reason="page")
    assert Visitor.objects.get(pk=vera.pk).erased_at is not None
    # Her consent record is proof and stays.
    assert ConsentRecord.objects.filter(visitor=vera).count() == 1


def test_a_client_who_withdrew_and_was_rewarned_is_listed(admin_client, administrator, channel):
    from openline.consent.services import withdraw_consent

    wendy = awaiting_client(channel, name="Wendy Withdrew")
    confirm(wendy)
    withdraw_consent(
        visitor=wendy,
        agreement=channel.agreement,
        origin=ConsentOrigin.TELEGRAM,
        source_type=SourceType.CRM_ITEM,
    )
    Visitor.objects.filter(pk=wendy.pk).update(awaiting_consent_since=timezone.now())

    assert [v.pk for v in admin_client.get(URL).context["clients"]] == [wendy.pk]
    awaiting.delete_client_data(actor=administrator, visitor=wendy, reason="page")
    assert Visitor.objects.get(pk=wendy.pk).erased_at is not None
    assert ConsentRecord.objects.filter(visitor=wendy).count() == 2
