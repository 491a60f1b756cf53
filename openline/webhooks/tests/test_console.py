"""Console pages and API for webhook endpoints: administrators only, the secret shown once."""

from __future__ import annotations

import json

from django.urls import reverse

from openline.conversations.actions import create_visitor, start_conversation
from openline.webhooks import signing
from openline.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from openline.webhooks.tests.helpers import deliver_all
from openline.webhooks.tests.receiver import Receiver


def _create(admin_client, url="https://example.com/hooks", events=("consent.given",)):
    return admin_client.post(
        reverse("webhooks:endpoint_create"),
        {"url": url, "description": "Warehouse", "events": list(events)},
    )


def test_an_administrator_adds_an_endpoint_and_sees_the_secret_once(admin_client):
    response = _create(admin_client)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    endpoint = WebhookEndpoint.objects.get()
    secret = signing.unseal(endpoint.secret_encrypted)
    assert secret in response.content.decode()
    assert endpoint.events == ["consent.given"] and endpoint.description == "Warehouse"
    for name in ("webhooks:endpoints", "webhooks:endpoint", "webhooks:endpoint_edit"):
        kwargs = {} if name == "webhooks:endpoints" else {"pk": endpoint.pk}
        page = admin_client.get(reverse(name, kwargs=kwargs)).content.decode()
        assert secret not in page and endpoint.secret_encrypted not in page
    # Rotating shows a new one, once; the old one no longer is the secret.
    rotated = admin_client.post(reverse("webhooks:endpoint_rotate", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    new = signing.unseal(endpoint.secret_encrypted)
    assert new != secret and new in rotated.content.decode()


def test_the_form_refuses_bad_urls_and_no_events(admin_client):
    response = admin_client.post(
        reverse("webhooks:endpoint_create"), {"url": "ftp://example.com/x", "events": []}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "Choose at least one event." in page
    assert "Enter a valid URL." in page
    assert WebhookEndpoint.objects.count() == 0


def test_edit_disable_enable_delete(admin_client):
    _create(admin_client)
    endpoint = WebhookEndpoint.objects.get()
    admin_client.post(
        reverse("webhooks:endpoint_edit", args=[endpoint.pk]),
        {"url": "https://example.org/in", "events": ["consent.given", "crm.item.created"]},
    )
    endpoint.refresh_from_db()
    assert endpoint.url == "https://example.org/in"
    assert endpoint.events == ["consent.given", "crm.item.created"]
    admin_client.post(reverse("webhooks:endpoint_toggle", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    detail = admin_client.get(reverse("webhooks:endpoint", args=[endpoint.pk])).content.decode()
    assert "Disabled by an administrator." in detail
    admin_client.post(reverse("webhooks:endpoint_toggle", args=[endpoint.pk]))
    assert WebhookEndpoint.objects.get().is_active
    admin_client.post(reverse("webhooks:endpoint_delete", args=[endpoint.pk]))
    assert WebhookEndpoint.objects.count() == 0


def test_the_detail_page_shows_attempts_and_resend_works(admin_client, channel):
    with Receiver(fail_first=1) as receiver:
        _create(admin_client, url=receiver.url, events=["conversation.started"])
        endpoint = WebhookEndpoint.objects.get()
        start_conversation(
            channel=channel, visitor=create_visitor(channel=channel, origin="livechat")
        )
        deliver_all()
        delivery = WebhookDelivery.objects.get()
        page = admin_client.get(reverse("webhooks:endpoint", args=[endpoint.pk])).content.decode()
        assert delivery.message_id in page
        assert "HTTP 503" in page and "HTTP 204" in page and " ms" in page
        response = admin_client.post(
            reverse("webhooks:delivery_resend", args=[delivery.pk]), follow=True
        )
    assert "Sent again: the endpoint answered HTTP 204." in response.content.decode()
    assert len(receiver.accepted()) == 2
    assert WebhookAttempt.objects.filter(manual=True).count() == 1


def test_operators_and_auditors_are_refused(operator_client, auditor_client, admin_client):
    _create(admin_client)
    endpoint = WebhookEndpoint.objects.get()
    for client in (operator_client, auditor_client):
        assert client.get(reverse("webhooks:endpoints")).status_code == 403
        assert (
            client.post(reverse("webhooks:endpoint_rotate", args=[endpoint.pk])).status_code == 403
        )
        assert client.get("/api/v1/webhook-endpoints").status_code == 403


def test_api_create_returns_the_secret_once_and_never_again(admin_client):
    created = admin_client.post(
        "/api/v1/webhook-endpoints",
        data={"url": "https://example.com/hooks", "events": ["message.received"]},
        content_type="application/json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_")
    secret = body["secret"]
    listed = admin_client.get("/api/v1/webhook-endpoints")
    one = admin_client.get(f"/api/v1/webhook-endpoints/{body['id']}")
    deliveries = admin_client.get(f"/api/v1/webhook-endpoints/{body['id']}/deliveries")
    for response in (listed, one, deliveries):
        assert response.status_code == 200
        assert secret not in response.content.decode()
        assert "secret" not in json.dumps(response.json())
    patched = admin_client.patch(
        f"/api/v1/webhook-endpoints/{body['id']}",
        data={"is_active": False},
        content_type="application/json",
    )
    assert patched.json()["is_active"] is False


def test_api_validation_names_the_field(admin_client):
    bad_url = admin_client.post(
        "/api/v1/webhook-endpoints",
        data={"url": "javascript:alert(1)", "events": ["message.received"]},
        content_type="application/json",
    )
    assert bad_url.status_code == 422 and "url" in bad_url.json()["detail"]
    bad_event = admin_client.post(
        "/api/v1/webhook-endpoints",
        data={"url": "https://example.com/", "events": ["nope"]},
        content_type="application/json",
    )
    assert bad_event.status_code == 422
    assert "events" in json.dumps(bad_event.json())
