"""Creating and editing leads and contacts over the API: roles, channels, fields, history."""

from __future__ import annotations

import json

from django.apps import apps
from django.test import Client

from openline.accounts.api_tokens import create_token
from openline.crm.models import ChangeAction, CrmItem
from openline.openchannels.services import create_open_channel

ITEMS = "/api/v1/crm/items"


def _send(client: Client, method: str, url: str, body: dict, **headers):
    return getattr(client, method)(
        url, data=json.dumps(body), content_type="application/json", **headers
    )


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_administrator_creates_a_contact_with_identities_and_history(
    admin_client, administrator, operator, channel
):
    body = {
        "kind": "contact",
        "name": "  Robin Roe ",
        "emails": ["Robin@Example.com"],
        "phones": ["+1 (555) 010-2000"],
        "source_channel_id": channel.pk,
        "responsible_id": operator.pk,
    }
    response = _send(admin_client, "post", ITEMS, body)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["kind"] == "contact" and data["name"] == "Robin Roe"
    assert data["emails"] == ["Robin@Example.com"]
    assert data["phones"] == ["+1 (555) 010-2000"]
    assert data["source_channel_id"] == channel.pk and data["responsible_id"] == operator.pk
    item = CrmItem.objects.get(pk=data["id"])
    assert item.created_by == administrator
    change = item.changes.get()
    assert change.action == ChangeAction.CREATED and change.changes["name"] == "Robin Roe"
    # It is found by the list's search, by e-mail and by phone digits.
    for q in ("robin@example", "5550102000", "Robin"):
        found = admin_client.get(ITEMS, {"q": q}).json()["items"]
        assert [i["id"] for i in found] == [item.pk]


def test_operators_create_only_for_channels_they_answer_auditors_not_at_all(
    operator_client, other_operator, auditor_client, administrator, channel
):
    shop = create_open_channel(actor=administrator, name="Shop", operators=[other_operator])
    mine = _send(operator_client, "post", ITEMS, {"kind": "lead", "source_channel_id": channel.pk})
    assert mine.status_code == 201 and mine.json()["kind"] == "lead"
    theirs = _send(operator_client, "post", ITEMS, {"kind": "lead", "source_channel_id": shop.pk})
    assert theirs.status_code == 403 and theirs.json()["code"] == "forbidden"
    nowhere = _send(operator_client, "post", ITEMS, {"kind": "lead", "name": "X"})
    assert nowhere.status_code == 422 and nowhere.json()["detail"].startswith("source_channel_id")
    refused = _send(auditor_client, "post", ITEMS, {"kind": "lead"})
    assert refused.status_code == 403
    assert _send(Client(), "post", ITEMS, {"kind": "lead"}).status_code == 401
    assert CrmItem.objects.count() == 1


def test_validation_names_the_field(admin_client, channel):
    cases = [
        ({"kind": "customer"}, "kind"),
        ({"name": "No kind"}, "kind"),
        ({"kind": "lead", "emails": ["not an email"]}, "emails"),
        ({"kind": "lead", "phones": ["call me"]}, "phones"),
        ({"kind": "lead", "source_channel_id": 999999}, "source_channel_id"),
        ({"kind": "lead", "responsible_id": 999999}, "responsible_id"),
        ({"kind": "lead", "name": "x" * 201}, "name"),
    ]
    for body, field in cases:
        response = _send(admin_client, "post", ITEMS, body)
        assert response.status_code == 422, (body, response.content)
        data = response.json()
        assert data["code"] == "invalid"
        assert field in data["detail"], (field, data)
    first = _send(admin_client, "post", ITEMS, {"kind": "lead", "emails": ["sam@example.com"]})
    assert first.status_code == 201
    again = _send(admin_client, "post", ITEMS, {"kind": "lead", "emails": ["SAM@example.com"]})
    assert again.status_code == 422
    assert again.json()["detail"].startswith("emails: SAM@example.com already belongs to")
    assert CrmItem.objects.count() == 1


def test_read_only_tokens_may_not_create_or_edit_writable_ones_may(administrator, channel):
    client = Client()
    read_only = create_token(administrator, "warehouse", read_only=True).secret
    auth = {"HTTP_AUTHORIZATION": f"Bearer {read_only}"}
    refused = _send(client, "post", ITEMS, {"kind": "lead"}, **auth)
    assert refused.status_code == 403 and refused.json()["code"] == "read_only_token"
    writable = create_token(administrator, "backend").secret
    auth = {"HTTP_AUTHORIZATION": f"Bearer {writable}"}
    created = _send(client, "post", ITEMS, {"kind": "lead", "name": "Ann"}, **auth)
    assert created.status_code == 201
    url = f"{ITEMS}/{created.json()['id']}"
    read_only_auth = {"HTTP_AUTHORIZATION": f"Bearer {read_only}"}
    patch = _send(client, "patch", url, {"name": "Anna"}, **read_only_auth)
    assert patch.status_code == 403 and patch.json()["code"] == "read_only_token"
    assert _send(client, "patch", url, {"name": "Anna"}, **auth).json()["name"] == "Anna"


def test_creating_writes_the_crm_item_created_event_for_a_subscribed_endpoint(
    admin_client, channel
):
    # Subscribe as an integrator would (the CRM does not import the webhooks app).
    subscribed = _send(
        admin_client,
        "post",
        "/api/v1/webhook-endpoints",
        {"url": "https://example.com/crm", "events": ["crm.item.created"]},
    )
    assert subscribed.status_code == 201, subscribed.content
    response = _send(admin_client, "post", ITEMS, {"kind": "lead", "name": "Ann"})
    assert response.status_code == 201
    event = apps.get_model("webhooks", "WebhookEvent").objects.get(type="crm.item.created")
    assert event.payload["data"]["item_id"] == response.json()["id"]
    endpoints = list(event.deliveries.values_list("endpoint_id", flat=True))
    assert endpoints == [subscribed.json()["id"]]
    # Names and other personal data stay out of the payload.
    assert "Ann" not in json.dumps(event.payload)


def test_patch_edits_converts_and_keeps_the_history(
    operator_client, operator, other_operator, admin_client, channel, administrator
):
    created = _send(
        operator_client,
        "post",
        ITEMS,
        {
            "kind": "lead",
            "name": "Lee",
            "emails": ["lee@example.com"],
            "source_channel_id": channel.pk,
        },
    ).json()
    url = f"{ITEMS}/{created['id']}"
    renamed = _send(
        operator_client, "patch", url, {"name": "Lee Lane", "phones": ["+44 20 7946 0000"]}
    )
    assert renamed.status_code == 200, renamed.content
    data = renamed.json()
    # Fields not given keep their values.
    assert data["name"] == "Lee Lane" and data["emails"] == ["lee@example.com"]
    assert data["phones"] == ["+44 20 7946 0000"] and data["kind"] == "lead"
    converted = _send(
        operator_client, "patch", url, {"kind": "contact", "responsible_id": operator.pk}
    )
    assert converted.status_code == 200
    assert converted.json()["kind"] == "contact" and converted.json()["converted_at"]
    assert converted.json()["responsible_id"] == operator.pk
    assert _send(operator_client, "patch", url, {"kind": "lead"}).status_code == 422
    assert (
        _send(operator_client, "patch", url, {"emails": ["bad"]})
        .json()["detail"]
        .startswith("emails")
    )
    assert _send(operator_client, "patch", url, {"name": None}).status_code == 422
    item = CrmItem.objects.get(pk=created["id"])
    actions = list(item.changes.order_by("created_at", "id").values_list("action", flat=True))
    assert actions == [
        ChangeAction.CREATED,
        ChangeAction.UPDATED,
        ChangeAction.UPDATED,
        ChangeAction.CONVERTED,
    ]
    # Someone else's channel: refused; deleted: gone; unknown: not found.
    shop = create_open_channel(actor=administrator, name="Shop", operators=[other_operator])
    assert shop.pk
    assert _send(_login(other_operator), "patch", url, {"name": "X"}).status_code == 403
    assert _send(admin_client, "patch", f"{ITEMS}/999999", {"name": "X"}).status_code == 404
    assert admin_client.delete(url).status_code == 200
    assert _send(admin_client, "patch", url, {"name": "X"}).status_code == 410
