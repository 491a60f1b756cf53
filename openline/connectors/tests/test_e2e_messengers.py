"""End to end, over real HTTP: webhooks into a server process, the worker, the fake platform.

First message -> CRM item + the warning (carrying the version link) sent to the platform;
second message -> exactly one consent record; redelivery -> still one of everything; plus
statuses, buttons, withdrawal, unicode and a WhatsApp batch.
"""

from __future__ import annotations

import json

import httpx
import pytest

from openline.connectors.models import InboundEvent
from openline.connectors.registry import connector_secrets, webhook_url
from openline.connectors.tests.e2e import (
    FIRST_MESSAGE,
    Messengers,
    first_message,
    next_message,
    start_stack,
    use_fake_platform,
)
from openline.connectors.tests.helpers import SEND_PATHS, eventually
from openline.consent.models import ConsentRecord
from openline.conversations.inbound import conversation_link, version_link
from openline.conversations.models import Message, OutboxItem, Visitor
from openline.crm.models import CrmVisitor
from openline.openchannels.models import OpenChannel
from openline.testing.fake_platforms import fixture

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_ID = {
    "telegram": "111222333",
    "whatsapp": "15550002222",
    "facebook": "2468013579246801",
    "viber": "FakeViberUser0001AbCd==",
}


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        running = start_stack(tmp_path_factory.mktemp("var"))
    yield running
    running.stop()


@pytest.fixture
def messengers(stack, channel, administrator, settings):
    use_fake_platform(settings, stack.fake)
    stack.ensure_running()
    stack.fake.requests.clear()
    yield Messengers(stack, channel, administrator)
    stack.settle()


def visitor_of(kind: str) -> Visitor | None:
    return Visitor.objects.filter(origin=kind, external_id=CLIENT_ID[kind]).first()


def sent_texts(stack, kind: str) -> list[str]:
    return [r.body.decode() for r in stack.fake.calls(SEND_PATHS[kind])]


def processed(count: int):
    def check():
        """all stored events processed"""
        rows = InboundEvent.objects.all()
        return rows.count() >= count and not rows.filter(state="pending").exists()

    return eventually(check)


@pytest.mark.parametrize("kind", sorted(FIRST_MESSAGE))
def test_first_message_warns_second_confirms_redelivery_changes_nothing(
    stack, messengers, channel, kind
):
    assert messengers.send(kind, first_message(kind)).status_code == 200
    warning = stack.fake.wait_for(SEND_PATHS[kind], timeout=40)[0]
    link = version_link(channel.agreement.current_version)
    assert link in warning.body.decode()
    visitor = visitor_of(kind)
    assert visitor is not None and visitor.name
    assert visitor.awaiting_consent_since is not None
    item_link = CrmVisitor.objects.get(visitor=visitor)
    assert not ConsentRecord.objects.exists()
    # Only a warning recorded as sent can be confirmed.
    eventually(lambda: OutboxItem.objects.filter(state="sent").exists())

    assert messengers.send(kind, next_message(kind, "Yes, go on")).status_code == 200
    record = eventually(lambda: ConsentRecord.objects.first())
    assert record.state == "given"
    assert record.method == "continued_chatting"
    assert record.origin == kind
    assert record.ip is None
    assert record.ip_missing_reason
    assert (record.source_type, record.source_id) == ("crm_item", str(item_link.item_id))
    assert record.address == conversation_link(record.conversation)
    assert record.visitor_id == visitor.pk

    # Redelivered (the platform retried both): nothing new anywhere.
    for payload in (first_message(kind), next_message(kind, "Yes, go on")):
        assert messengers.send(kind, payload).status_code == 200
    processed(2)
    assert InboundEvent.objects.count() == 2
    assert Message.objects.filter(conversation__visitor=visitor, sender="visitor").count() == 2
    assert ConsentRecord.objects.count() == 1
    assert CrmVisitor.objects.filter(visitor__origin=kind).count() == 1
    assert Visitor.objects.filter(origin=kind).count() == 1
    assert len(sent_texts(stack, kind)) == 1  # one warning, sent once


def test_unicode_names_and_texts_arrive_intact(stack, messengers):
    update = fixture("telegram_update_text_language.json")
    assert messengers.send("telegram", update).status_code == 200
    message = eventually(lambda: Message.objects.filter(sender="visitor").first())
    assert message.text == update["message"]["text"]
    visitor = message.conversation.visitor
    assert visitor.name.startswith("Σοφία 🌻")
    assert visitor.language == "de"
    # The warning is in the client's language (German).
    warning = json.loads(stack.fake.wait_for(SEND_PATHS["telegram"], timeout=40)[0].body)
    assert "Indem Sie diesen Chat weiter nutzen" in warning["text"]


def test_a_whatsapp_batch_of_two_is_handled_whole(stack, messengers):
    batch = fixture("whatsapp_text_message_batch_two.json")
    assert messengers.send("whatsapp", batch).status_code == 200
    processed(2)
    texts = sorted(Message.objects.filter(sender="visitor").values_list("text", flat=True))
    expected = sorted(
        m["text"]["body"] for m in batch["entry"][0]["changes"][0]["value"]["messages"]
    )
    assert texts == expected
    assert Visitor.objects.filter(origin="whatsapp").count() == 1
    assert CrmVisitor.objects.count() == 1
    assert Message.objects.filter(sender="visitor").values("conversation").distinct().count() == 1


def test_a_late_delivered_status_never_overwrites_read(stack, messengers):
    assert messengers.send("whatsapp", first_message("whatsapp")).status_code == 200
    item = eventually(lambda: OutboxItem.objects.filter(state="sent").first())
    wamid = item.platform_message_id

    def status(name: str) -> dict:
        payload = fixture(f"whatsapp_status_{name}.json")
        payload["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = wamid
        return payload

    assert messengers.send("whatsapp", status("read")).status_code == 200
    eventually(lambda: Message.objects.filter(pk=item.message_id, delivery_state="read").exists())
    assert messengers.send("whatsapp", status("delivered")).status_code == 200
    processed(3)
    assert Message.objects.get(pk=item.message_id).delivery_state == "read"


@pytest.fixture
def buttons_mode(channel):
    OpenChannel.objects.filter(pk=channel.pk).update(messenger_consent_mode="buttons")
    channel.refresh_from_db()
    return channel


def _press(data: str) -> dict:
    update = fixture("telegram_update_callback_query.json")
    update["callback_query"]["data"] = data
    return update


def test_buttons_mode_accept_records_a_click(stack, messengers, buttons_mode):
    assert messengers.send("telegram", first_message("telegram")).status_code == 200
    warning = json.loads(stack.fake.wait_for(SEND_PATHS["telegram"], timeout=40)[0].body)
    pressed = [
        b["callback_data"] for row in warning["reply_markup"]["inline_keyboard"] for b in row
    ]
    version = buttons_mode.agreement.current_version
    # The payload names the version warned about.
    assert pressed == [f"consent:accept:{version.id}", f"consent:decline:{version.id}"]

    assert messengers.send("telegram", _press(pressed[0])).status_code == 200
    record = eventually(lambda: ConsentRecord.objects.first())
    assert (record.state, record.method, record.origin) == ("given", "clicked_accept", "telegram")
    # The press is acknowledged so the client's button stops spinning.
    stack.fake.wait_for(r"/bot[^/]+/answerCallbackQuery", timeout=40)


def test_buttons_mode_decline_deletes_the_client_and_stores_no_refusal(
    stack, messengers, buttons_mode
):
    assert messengers.send("telegram", first_message("telegram")).status_code == 200
    stack.fake.wait_for(SEND_PATHS["telegram"], timeout=40)
    visitor = eventually(lambda: visitor_of("telegram"))
    assert CrmVisitor.objects.filter(visitor=visitor).exists()

    version = buttons_mode.agreement.current_version
    assert messengers.send("telegram", _press(f"consent:decline:{version.id}")).status_code == 200
    processed(2)
    visitor.refresh_from_db()
    assert visitor.erased_at is not None
    assert not CrmVisitor.objects.filter(visitor=visitor).exists()
    assert not ConsentRecord.objects.exists()
    original = first_message("telegram")["message"]["text"]
    assert not Message.objects.filter(text=original).exists()


def test_the_withdrawal_keyword_records_a_withdrawal_and_tells_the_client(stack, messengers):
    kind = "viber"
    assert messengers.send(kind, first_message(kind)).status_code == 200
    eventually(lambda: OutboxItem.objects.filter(state="sent").exists())
    assert messengers.send(kind, next_message(kind, "ok")).status_code == 200
    eventually(lambda: ConsentRecord.objects.filter(state="given").exists())
    told_before = len(stack.fake.wait_for(SEND_PATHS[kind], timeout=40))
    assert messengers.send(kind, next_message(kind, "/stop", n=2)).status_code == 200
    withdrawal = eventually(lambda: ConsentRecord.objects.filter(state="withdrawn").first())
    assert withdrawal.method == "withdrawn_by_client"
    assert withdrawal.origin == kind
    stack.fake.wait_for(SEND_PATHS[kind], count=told_before + 1, timeout=40)
    assert ConsentRecord.objects.count() == 2


@pytest.mark.parametrize("kind", sorted(FIRST_MESSAGE))
def test_forged_signatures_over_http_are_refused_without_a_trace(stack, messengers, kind):
    forged = {
        "telegram": {"X-Telegram-Bot-Api-Secret-Token": "forged"},
        "viber": {"X-Viber-Content-Signature": "0" * 64},
    }.get(kind, {"X-Hub-Signature-256": "sha256=" + "0" * 64})
    connector = messengers[kind]
    response = messengers.send(kind, first_message(kind), headers=forged)
    assert response.status_code in (401, 403)
    assert response.json() == {"error": "signature check failed"}
    assert not InboundEvent.objects.exists()
    assert not Visitor.objects.filter(origin=kind).exists()
    connector.refresh_from_db()
    assert connector.last_event_at is None


def test_whatsapp_unicode_escapes_signed_over_raw_bytes_reach_the_inbox(stack, messengers):
    vector = fixture("whatsapp_text_message_unicode_escapes.json")
    url = webhook_url(messengers["whatsapp"], stack.server.url)
    response = httpx.post(
        url,
        content=vector["raw_body"].encode(),
        headers={"Content-Type": "application/json", vector["header_name"]: vector["header_value"]},
        timeout=10,
    )
    assert response.status_code == 200
    message = eventually(lambda: Message.objects.filter(sender="visitor").first())
    assert "\U0001f60a" in message.text
    assert message.conversation.visitor.name == "Zoë"
    stack.fake.wait_for(SEND_PATHS["whatsapp"], timeout=40)


def test_the_lean_webhook_path_keeps_every_rule_over_real_http(stack, messengers):
    """The server's thread-pool path for /hooks/ (connectors/asgi.py) answers like the view."""
    connector = messengers["telegram"]
    url = webhook_url(connector, stack.server.url)
    secret = {"X-Telegram-Bot-Api-Secret-Token": connector_secrets(connector)["secret_token"]}
    # Over the body limit: refused before anything is read into the view or stored.
    big = httpx.post(url, content=b"{" + b" " * (1024 * 1024 + 10) + b"}", headers=secret)
    assert big.status_code == 413
    # Unknown token, and a GET for a platform without a handshake: no trace either way.
    assert httpx.post(url.replace(connector.webhook_token, "nope"), json={}).status_code == 404
    assert httpx.get(url, headers=secret).status_code == 405
    assert httpx.post(url, content=b"{not json", headers=secret).status_code == 400
    assert not InboundEvent.objects.exists()
    # A well-formed signed update is stored once, however often it is delivered at once.
    update = first_message("telegram")
    with httpx.Client() as client:
        answers = [client.post(url, json=update, headers=secret) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == {"ok": True}
    assert InboundEvent.objects.count() == 1
