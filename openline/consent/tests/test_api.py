"""The consent registry API: read, record, withdraw; records can never be changed (405)."""

from __future__ import annotations

import json

import pytest

from openline.consent.models import ConsentRecord


@pytest.fixture
def given(give):
    return give()


def test_list_records_with_keyset_cursor(auditor_client, give):
    made = [give(source_id=str(i)) for i in range(5)]
    first = auditor_client.get("/api/v1/consents/records?limit=3").json()
    assert [item["id"] for item in first["items"]] == [str(r.uuid) for r in reversed(made)][:3]
    second = auditor_client.get(
        f"/api/v1/consents/records?limit=3&cursor={first['next_cursor']}"
    ).json()
    assert len(second["items"]) == 2 and second["next_cursor"] is None
    assert auditor_client.get("/api/v1/consents/records?cursor=@@@").status_code == 400
    assert auditor_client.get("/api/v1/consents/records?consent=99999").status_code == 404


def test_get_record_and_receipt(auditor_client, given):
    record = auditor_client.get(f"/api/v1/consents/records/{given.uuid}").json()
    assert record["text_sha256"] == given.text_sha256 and record["state"] == "given"
    receipt = auditor_client.get(f"/api/v1/consents/records/{given.uuid}/receipt").json()
    assert receipt["consentReceiptID"] == str(given.uuid)
    assert (
        auditor_client.get(
            "/api/v1/consents/records/00000000-0000-0000-0000-000000000000"
        ).status_code
        == 404
    )


def test_records_cannot_be_changed_or_deleted_through_the_api(admin_client, given):
    url = f"/api/v1/consents/records/{given.uuid}"
    for method in ("put", "patch", "delete"):
        response = getattr(admin_client, method)(url, data="{}", content_type="application/json")
        assert response.status_code == 405, method
    assert ConsentRecord.objects.filter(pk=given.pk).exists()


def test_administrator_records_and_withdraws_consent_through_the_api(
    admin_client, visitor, agreement
):
    response = admin_client.post(
        "/api/v1/consents/records",
        data=json.dumps(
            {
                "visitor_id": str(visitor.public_id),
                "consent_id": agreement.pk,
                "ip": "198.51.100.4",
                "address": "https://shop.example/checkout",
                "evidence": {"form": "checkout"},
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["method"], body["origin"], body["source_type"]) == ("api", "api", "api")
    assert body["evidence"]["form"] == "checkout" and body["ip"] == "198.51.100.4"
    withdrawn = admin_client.post(
        "/api/v1/consents/withdrawals",
        data=json.dumps({"visitor_id": str(visitor.public_id), "consent_id": agreement.pk}),
        content_type="application/json",
    )
    assert withdrawn.status_code == 201 and withdrawn.json()["state"] == "withdrawn"
    again = admin_client.post(
        "/api/v1/consents/withdrawals",
        data=json.dumps({"visitor_id": str(visitor.public_id), "consent_id": agreement.pk}),
        content_type="application/json",
    )
    assert again.status_code == 409


def test_api_bad_input(admin_client, visitor, agreement):
    def post(payload):
        return admin_client.post(
            "/api/v1/consents/records", data=json.dumps(payload), content_type="application/json"
        )

    assert post({"visitor_id": str(visitor.public_id), "consent_id": 999999}).status_code == 404
    assert (
        post(
            {"visitor_id": "00000000-0000-0000-0000-000000000000", "consent_id": agreement.pk}
        ).status_code
        == 404
    )
    assert (
        post(
            {"visitor_id": str(visitor.public_id), "consent_id": agreement.pk, "version": 7}
        ).status_code
        == 404
    )
    assert (
        post(
            {"visitor_id": str(visitor.public_id), "consent_id": agreement.pk, "ip": "nope"}
        ).status_code
        == 422
    )
    assert (
        post(
            {"visitor_id": str(visitor.public_id), "consent_id": agreement.pk, "state": "withdrawn"}
        ).status_code
        == 422
    )
    assert not ConsentRecord.objects.exists()


def test_roles_on_the_api(operator_client, auditor_client, client, visitor, agreement, given):
    assert operator_client.get("/api/v1/consents/records").status_code == 403
    assert operator_client.get(f"/api/v1/consents/records/{given.uuid}/receipt").status_code == 403
    assert client.get("/api/v1/consents/records").status_code == 401
    payload = json.dumps({"visitor_id": str(visitor.public_id), "consent_id": agreement.pk})
    assert (
        auditor_client.post(
            "/api/v1/consents/records", data=payload, content_type="application/json"
        ).status_code
        == 403
    )


def _live_chat_client(channel):
    """A client who accepted the channel's consent and started a chat in the widget."""
    from django.test import Client

    from openline.conversations.models import Conversation
    from openline.conversations.models import Visitor as VisitorModel
    from openline.livechat.tests.helpers import accepted_for

    accepted = accepted_for(channel)
    started = Client().post(
        f"/widget/{channel.code}/start",
        json.dumps(
            {
                "text": "Hello",
                "language": "en",
                "consent": {
                    "version": accepted.version_id,
                    "language": accepted.language,
                    "sha256": accepted.sha256,
                },
            }
        ),
        content_type="application/json",
    )
    assert started.status_code == 201
    visitor = VisitorModel.objects.get(public_id=started.json()["visitor"])
    return visitor, Conversation.objects.get(visitor=visitor)


def test_an_api_withdrawal_tells_and_closes_the_clients_open_chats_as_the_widget_does(
    admin_client, channel, agreement
):
    from openline.conversations.models import ConversationStatus, Message

    visitor, conversation = _live_chat_client(channel)
    assert conversation.status != ConversationStatus.CLOSED
    withdrawn = admin_client.post(
        "/api/v1/consents/withdrawals",
        data=json.dumps({"visitor_id": str(visitor.public_id), "consent_id": agreement.pk}),
        content_type="application/json",
    )
    assert withdrawn.status_code == 201 and withdrawn.json()["state"] == "withdrawn"
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    assert conversation.closed_reason == "The client withdrew consent"
    # The client is told in the chat, as after a withdrawal in the widget.
    notice = Message.objects.filter(conversation=conversation).order_by("-id").first()
    assert notice is not None and notice.sender == "system"
    # Withdrawn again: refused, and nothing else changes.
    count = Message.objects.filter(conversation=conversation).count()
    again = admin_client.post(
        "/api/v1/consents/withdrawals",
        data=json.dumps({"visitor_id": str(visitor.public_id), "consent_id": agreement.pk}),
        content_type="application/json",
    )
    assert again.status_code == 409
    assert Message.objects.filter(conversation=conversation).count() == count


def test_an_api_withdrawal_of_a_consent_the_channel_does_not_ask_for_leaves_the_chat_open(
    admin_client, administrator, channel
):
    from openline.consent.services import create_agreement
    from openline.conversations.models import ConversationStatus

    visitor, conversation = _live_chat_client(channel)
    newsletter = create_agreement(
        actor=administrator, name="Newsletter", text="We send you our news.", allow_html=False
    )
    body = {"visitor_id": str(visitor.public_id), "consent_id": newsletter.pk}
    given = admin_client.post(
        "/api/v1/consents/records", data=json.dumps(body), content_type="application/json"
    )
    assert given.status_code == 201
    withdrawn = admin_client.post(
        "/api/v1/consents/withdrawals", data=json.dumps(body), content_type="application/json"
    )
    assert withdrawn.status_code == 201 and withdrawn.json()["state"] == "withdrawn"
    conversation.refresh_from_db()
    assert conversation.status != ConversationStatus.CLOSED
