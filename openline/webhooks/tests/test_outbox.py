"""Events become outbox rows in the writing transaction; payloads; Standard Webhooks signatures."""

from __future__ import annotations

import json
import logging

import pytest
from django.db import transaction
from standardwebhooks import Webhook

from openline.consent.models import ConsentMethod, ConsentOrigin, SourceType
from openline.consent.sealing import seal_pending
from openline.consent.services import record_consent, withdraw_consent
from openline.conversations.actions import (
    close_conversation,
    create_visitor,
    receive_message,
    send_reply,
    start_conversation,
)
from openline.crm.deletion import delete_client_data
from openline.crm.services import save_conversation_to_crm
from openline.webhooks import services, signing
from openline.webhooks.delivery import body_of
from openline.webhooks.events import EVENT_TYPES
from openline.webhooks.models import WebhookDelivery, WebhookEvent

ALL = list(EVENT_TYPES)


@pytest.fixture
def endpoint(administrator):
    endpoint, secret = services.create_endpoint(
        actor=administrator, url="http://127.0.0.1:9/hooks", events=ALL, description="Warehouse"
    )
    endpoint.test_secret = secret
    return endpoint


def _chat(channel):
    visitor = create_visitor(channel=channel, origin="livechat")
    return visitor, start_conversation(
        channel=channel, visitor=visitor, page_url="https://shop.example/"
    )


def test_the_secret_is_whsec_base64_of_32_bytes_and_stored_encrypted(endpoint):
    import base64

    secret = endpoint.test_secret
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret not in endpoint.secret_encrypted
    assert signing.unseal(endpoint.secret_encrypted) == secret


def test_signatures_verify_with_the_standard_webhooks_library(endpoint, channel):
    _chat(channel)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    body = body_of(delivery)
    import time

    headers = signing.headers(
        secret=endpoint.test_secret,
        msg_id=delivery.message_id,
        timestamp=int(time.time()),
        body=body,
    )
    verified = Webhook(endpoint.test_secret).verify(body, headers)
    assert verified["type"] == "conversation.started"
    assert headers["webhook-id"].startswith("msg_")
    # A changed body, or another secret, does not verify.
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.test_secret).verify(body.replace(b"started", b"closed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_a_rolled_back_change_leaves_no_outbox_row(endpoint, channel):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        _chat(channel)
        assert WebhookDelivery.objects.count() == 1  # written inside the transaction
        raise Boom
    assert WebhookEvent.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0


def test_only_subscribed_active_endpoints_get_rows(administrator, endpoint, channel):
    crm_only, _ = services.create_endpoint(
        actor=administrator, url="http://127.0.0.1:9/crm", events=["crm.item.created"]
    )
    off, _ = services.create_endpoint(actor=administrator, url="http://127.0.0.1:9/off", events=ALL)
    services.set_active(endpoint=off, active=False)
    _chat(channel)
    assert list(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == [endpoint.pk]
    assert not WebhookDelivery.objects.filter(endpoint__in=[crm_only, off]).exists()


def test_no_endpoint_no_rows(channel):
    _chat(channel)
    assert WebhookEvent.objects.count() == 0


def _events() -> list[dict]:
    return [e.payload for e in WebhookEvent.objects.order_by("id")]


def test_every_event_type_and_its_payload(endpoint, channel, agreement, administrator, operator):
    visitor, conversation = _chat(channel)
    message, _ = receive_message(
        conversation=conversation, visitor=visitor, text="Hello, I need help"
    )
    reply, _ = send_reply(conversation=conversation, actor=operator, text="Hi! How can I help?")
    record = record_consent(
        visitor=visitor,
        version=agreement.current_version,
        language="en",
        state="given",
        method=ConsentMethod.CLICKED_ACCEPT,
        origin=ConsentOrigin.LIVECHAT,
        source_type=SourceType.CONVERSATION,
        ip="203.0.113.7",
        address="https://shop.example/",
        channel=channel,
        conversation=conversation,
    )
    withdrawn = withdraw_consent(
        visitor=visitor,
        agreement=agreement,
        origin=ConsentOrigin.LIVECHAT,
        source_type=SourceType.CONVERSATION,
        ip="203.0.113.7",
    )
    item = save_conversation_to_crm(
        actor=operator, conversation=conversation, name="Sam", email="sam@example.com"
    ).item
    close_conversation(conversation=conversation, actor=operator)
    delete_client_data(actor=administrator, item_id=item.pk)
    seal_pending()

    events = _events()
    by_type = {e["type"]: e for e in events}
    assert set(by_type) == set(ALL), set(ALL) - set(by_type)
    for event in events:
        assert set(event) == {"type", "timestamp", "data"}
        assert event["timestamp"].endswith("Z")
    started = by_type["conversation.started"]["data"]
    assert started["conversation_id"] == conversation.pk
    assert started["visitor_id"] == str(visitor.public_id)
    assert by_type["message.received"]["data"]["message_id"] == message.pk
    assert by_type["message.received"]["data"]["text"] == "Hello, I need help"
    sent = [e["data"] for e in events if e["type"] == "message.sent"]
    assert reply.pk in [d["message_id"] for d in sent]
    assert by_type["consent.given"]["data"]["record_id"] == str(record.uuid)
    assert by_type["consent.withdrawn"]["data"]["record_id"] == str(withdrawn.uuid)
    assert by_type["crm.item.created"]["data"]["item_id"] == item.pk
    assert by_type["crm.item.deleted"]["data"]["item_id"] == item.pk
    assert by_type["conversation.closed"]["data"]["closed_at"]
    checkpoint = by_type["registry.checkpoint"]["data"]
    assert checkpoint["record_count"] >= 2 and checkpoint["jws"].count(".") == 2
    # Minimal personal data: no IP, page URL, e-mail or name in any payload.
    text = json.dumps(events)
    for personal in ("203.0.113.7", "shop.example", "sam@example.com", '"Sam"'):
        assert personal not in text
    # One delivery per event for the one endpoint, each with its own stable id.
    ids = list(WebhookDelivery.objects.values_list("message_id", flat=True))
    assert len(ids) == len(events) == len(set(ids))


def test_the_secret_is_never_logged_or_in_payloads(endpoint, channel, caplog):
    caplog.set_level(logging.DEBUG)
    _chat(channel)
    from openline.webhooks.delivery import deliver_due

    deliver_due()  # port 9: refused, a failure is logged
    assert endpoint.test_secret not in caplog.text
    assert endpoint.secret_encrypted not in caplog.text
    assert endpoint.test_secret not in json.dumps(_events())


def test_secrets_are_reencrypted_with_the_newest_key(endpoint, settings):
    from cryptography.fernet import Fernet

    from openline.core import secrets as stored

    old = stored.current_keys()
    settings.OPENLINE_SECRETS_KEYS = ",".join(k.decode() for k in [Fernet.generate_key(), *old])
    stored.forget_cached_keys()
    try:
        assert services.reencrypt_secrets() == 1
        endpoint.refresh_from_db()
        settings.OPENLINE_SECRETS_KEYS = stored.current_keys()[0].decode()  # old keys gone
        stored.forget_cached_keys()
        assert signing.unseal(endpoint.secret_encrypted) == endpoint.test_secret
    finally:
        stored.forget_cached_keys()
