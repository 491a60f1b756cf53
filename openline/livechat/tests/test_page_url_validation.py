"""Every page URL a client reports passes one check (http/https, capped) on every path."""

from __future__ import annotations

import json

import pytest

from openline.consent.models import ConsentRecord
from openline.conversations import actions
from openline.conversations.models import Conversation
from openline.core.pageurl import MAX_PAGE_URL, clean_page_url
from openline.livechat.tests.helpers import WsClient, consented_visitor, run_async

HOSTILE = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "  javascript:alert(1)",
    "java\tscript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "https:alert(1)",
    "//evil.example/",
    "https://shop.example/\x00",
    "https://shop.example/x\ud83d",
    "http://[::1",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_page_urls_are_dropped(url):
    assert clean_page_url(url) == ""


def test_http_and_https_page_urls_are_kept_and_capped():
    assert clean_page_url(" https://shop.example/cart?x=1 ") == "https://shop.example/cart?x=1"
    assert clean_page_url("HTTP://Shop.example/") == "HTTP://Shop.example/"
    long = "https://shop.example/" + "a" * 5000
    assert clean_page_url(long) == long[:MAX_PAGE_URL]
    assert clean_page_url(None) == "" and clean_page_url(["https://x.example/"]) == ""


# ----- over a real websocket -------------------------------------------------------------


async def _visitor_socket(server, channel, token):
    ws = await WsClient.open(server, f"/ws/widget/{channel.code}/")
    await ws.send_json_to({"type": "auth", "token": token, "last_id": 0})
    while (await ws.receive_json_from())["type"] != "ready":
        pass
    return ws


async def _next_of(ws, kind):
    while True:
        frame = await ws.receive_json_from()
        if frame["type"] == kind:
            return frame


@pytest.mark.django_db(transaction=True)
def test_websocket_message_starting_a_chat_never_stores_a_javascript_url(
    live_asgi, channel, operator
):
    started, token = consented_visitor(channel)
    actions.close_conversation(conversation=started.conversation, actor=operator)

    async def body():
        ws = await _visitor_socket(live_asgi, channel, token)
        await ws.send_json_to(
            {
                "type": "message",
                "text": "new chat",
                "client_id": "js",
                "page_url": "javascript:alert(document.cookie)",
            }
        )
        frame = await _next_of(ws, "message")
        await ws.disconnect()
        return frame["message"]["conversation"]

    conversation_id = run_async(body)
    assert conversation_id != started.conversation.pk
    assert Conversation.objects.get(pk=conversation_id).page_url == ""


@pytest.mark.django_db(transaction=True)
def test_websocket_message_keeps_an_https_page_url(live_asgi, channel, operator):
    started, token = consented_visitor(channel)
    actions.close_conversation(conversation=started.conversation, actor=operator)

    async def body():
        ws = await _visitor_socket(live_asgi, channel, token)
        await ws.send_json_to(
            {
                "type": "message",
                "text": "new chat",
                "client_id": "ok",
                "page_url": "https://shop.example/help",
            }
        )
        frame = await _next_of(ws, "message")
        await ws.disconnect()
        return frame["message"]["conversation"]

    conversation_id = run_async(body)
    assert Conversation.objects.get(pk=conversation_id).page_url == "https://shop.example/help"


@pytest.mark.django_db(transaction=True)
def test_websocket_withdrawal_never_stores_a_javascript_address(live_asgi, channel):
    _, token = consented_visitor(channel)

    async def body():
        ws = await _visitor_socket(live_asgi, channel, token)
        await ws.send_json_to({"type": "withdraw", "page_url": "javascript:alert(1)"})
        frame = await _next_of(ws, "withdrawn")
        await ws.disconnect()
        return frame["record"]

    record = ConsentRecord.objects.get(uuid=run_async(body))
    assert record.state == "withdrawn"
    assert record.address == "" and "javascript" not in record.source_label


# ----- the HTTP start endpoint and the API use the same check ------------------------------


def test_http_start_drops_a_javascript_page_url(client, channel):
    from openline.livechat.tests.test_widget_http import consent_body, start

    response = start(client, channel, consent_body(channel, page_url="javascript:alert(1)"))
    assert response.status_code == 201, response.content
    conversation = Conversation.objects.get()
    assert conversation.page_url == ""
    assert conversation.consent_records.get().address == ""


def test_api_refuses_a_javascript_address_with_422(admin_client, channel):
    started, _ = consented_visitor(channel)
    response = admin_client.post(
        "/api/v1/consents/records",
        data=json.dumps(
            {
                "visitor_id": str(started.visitor.public_id),
                "consent_id": channel.agreement_id,
                "address": "javascript:alert(1)",
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 422 and "address" in response.json()["detail"]
    assert ConsentRecord.objects.count() == 1


# ----- defence in depth: the inbox never links a non-http(s) URL ----------------------------


@pytest.mark.django_db
def test_inbox_shows_a_stored_javascript_url_as_text_not_a_link(operator_client, channel):
    started, _ = consented_visitor(channel)
    # Rows written before this check existed may still hold such a URL.
    Conversation.objects.filter(pk=started.conversation.pk).update(page_url="javascript:alert(1)")
    page = operator_client.get(f"/console/inbox/{started.conversation.pk}/").text
    assert 'href="javascript:' not in page
    assert "javascript:alert(1)" in page
