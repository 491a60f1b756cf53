"""Clients awaiting consent over the API: who sees them, and deleting their data."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from openline.conversations import actions
from openline.conversations.models import Message, Visitor
from openline.crm.models import CrmErasure
from openline.openchannels.services import create_open_channel

URL = "/api/v1/awaiting-consent"


def _awaiting(channel, external_id: str, text: str = "Hello") -> Visitor:
    visitor = actions.create_visitor(channel=channel, origin="telegram")
    visitor.external_id = external_id
    visitor.name = f"Client {external_id}"
    visitor.awaiting_consent_since = timezone.now()
    visitor.warning_version_id = channel.agreement.current_version.pk if channel.agreement else None
    visitor.save()
    conversation = actions.start_conversation(channel=channel, visitor=visitor)
    actions.receive_message(conversation=conversation, visitor=visitor, text=text, client_id="m1")
    return visitor


@pytest.fixture
def shop(administrator, other_operator, agreement):
    return create_open_channel(
        actor=administrator,
        name="Shop",
        operators=[other_operator],
        consent_enabled=True,
        agreement=agreement,
    )


def test_who_sees_whom(admin_client, operator_client, auditor_client, channel, shop):
    mine = _awaiting(channel, "1")
    theirs = _awaiting(shop, "2")
    listed = admin_client.get(URL).json()["items"]
    assert [v["visitor_id"] for v in listed] == [str(mine.public_id), str(theirs.public_id)]
    assert listed[0]["client"] == "Client 1" and listed[0]["messages"] == 1
    assert listed[0]["origin"] == "telegram" and listed[0]["channel_id"] == channel.pk
    assert [v["visitor_id"] for v in operator_client.get(URL).json()["items"]] == [
        str(mine.public_id)
    ]
    filtered = admin_client.get(URL, {"channel": shop.pk}).json()["items"]
    assert [v["visitor_id"] for v in filtered] == [str(theirs.public_id)]
    # Another channel's client (or the channel itself) is as if it did not exist.
    assert operator_client.get(URL, {"channel": shop.pk}).status_code == 404
    assert operator_client.get(f"{URL}/{theirs.public_id}").status_code == 404
    assert operator_client.delete(f"{URL}/{theirs.public_id}").status_code == 404
    assert Visitor.objects.get(pk=theirs.pk).erased_at is None
    assert auditor_client.get(URL).status_code == 403
    assert auditor_client.delete(f"{URL}/{mine.public_id}").status_code == 403
    assert Client().get(URL).status_code == 401
    refused = admin_client.get(URL, {"channel": "x"})
    assert refused.status_code == 422 and "channel" in refused.json()["detail"]


def test_cursor_pages(admin_client, channel):
    clients = [_awaiting(channel, str(n)) for n in range(3)]
    page = admin_client.get(URL, {"limit": 2}).json()
    assert len(page["items"]) == 2
    rest = admin_client.get(URL, {"limit": 2, "cursor": page["next_cursor"]}).json()
    seen = [v["visitor_id"] for v in page["items"] + rest["items"]]
    assert seen == [str(v.public_id) for v in clients] and rest["next_cursor"] is None


def test_deleting_uses_the_pages_service_and_keeps_consent_records(operator_client, channel):
    visitor = _awaiting(channel, "9", text="My phone is +49 170 1234567")
    preview = operator_client.get(f"{URL}/{visitor.public_id}").json()
    assert preview["conversations"] == 1 and preview["messages"] == 1
    deleted = operator_client.delete(f"{URL}/{visitor.public_id}")
    assert deleted.status_code == 200, deleted.content
    assert deleted.json()["visitor_id"] == str(visitor.public_id)
    visitor.refresh_from_db()
    assert visitor.erased_at is not None and visitor.name == ""
    assert not Message.objects.filter(conversation__visitor=visitor).exists()
    assert operator_client.get(URL).json()["items"] == []
    # Gone from the list: deleting again finds nobody.
    assert operator_client.delete(f"{URL}/{visitor.public_id}").status_code == 404
    assert CrmErasure.objects.count() == len(deleted.json()["deleted_crm_items"])


def test_a_client_who_consented_is_not_listed_or_deleted(admin_client, channel):
    from openline.consent import services
    from openline.consent.models import ConsentOrigin, SourceType

    visitor = _awaiting(channel, "5")
    services.record_consent(
        visitor=visitor,
        version=channel.agreement.current_version,
        language="en",
        state="given",
        method="continued_chatting",
        origin=ConsentOrigin.TELEGRAM,
        source_type=SourceType.CONVERSATION,
        source_id="",
        source_label="test",
        channel=channel,
    )
    assert admin_client.get(URL).json()["items"] == []
    assert admin_client.delete(f"{URL}/{visitor.public_id}").status_code == 404
    visitor.refresh_from_db()
    assert visitor.erased_at is None
