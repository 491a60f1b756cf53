"""The widget's HTTP side: loader, iframe headers, sizes, the start endpoint, receipts, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Message, Visitor
from openline.livechat.origins import CONFIG_KEY
from openline.livechat.tests.helpers import accepted_for, consented_visitor
from openline.openchannels.services import set_connector, update_consent_settings

STATIC = Path(__file__).resolve().parent.parent / "static" / "livechat"


def start(client, channel, body, token=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(
        f"/widget/{channel.code}/start",
        data=json.dumps(body),
        content_type="application/json",
        **headers,
        **extra,
    )


def consent_body(channel, text="Hi", **overrides):
    accepted = accepted_for(channel)
    body = {
        "text": text,
        "client_id": "c1",
        "page_url": "https://shop.example/cart",
        "language": "en",
        "consent": {
            "version": accepted.version_id,
            "language": accepted.language,
            "sha256": accepted.sha256,
        },
    }
    body.update(overrides)
    return body


def test_loader_and_frame_assets_stay_small(client, channel):
    loader = client.get(f"/widget/{channel.code}.js")
    assert loader.status_code == 200 and loader["Content-Type"].startswith("text/javascript")
    assert len(loader.content) < 5 * 1024, len(loader.content)
    frame_assets = (STATIC / "widget.js").stat().st_size + (STATIC / "widget.css").stat().st_size
    assert frame_assets < 40 * 1024, frame_assets


def test_loader_is_404_when_the_live_chat_is_off(client, channel, administrator):
    set_connector(actor=administrator, channel=channel, kind="livechat", is_enabled=False)
    assert client.get(f"/widget/{channel.code}.js").status_code == 404
    assert client.get(f"/widget/{channel.code}/frame").status_code == 404
    assert client.get("/widget/no-such-code.js").status_code == 404


def test_frame_may_only_be_embedded_by_the_allowed_websites(client, channel, administrator):
    response = client.get(f"/widget/{channel.code}/frame")
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    set_connector(
        actor=administrator,
        channel=channel,
        kind="livechat",
        is_enabled=True,
        config={CONFIG_KEY: ["https://shop.example", "https://www.shop.example:8443"]},
    )
    response = client.get(f"/widget/{channel.code}/frame")
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors https://shop.example https://www.shop.example:8443" in csp
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "X-Frame-Options" not in response
    assert response["Cache-Control"].startswith("max-age=0")


def test_frame_speaks_the_browsers_language(client, channel):
    german = client.get(
        f"/widget/{channel.code}/frame", HTTP_ACCEPT_LANGUAGE="de-AT,de;q=0.9,en;q=0.5"
    )
    assert '<html lang="de">' in german.text and "Ich stimme zu" in german.text
    english = client.get(f"/widget/{channel.code}/frame", HTTP_ACCEPT_LANGUAGE="fi-FI")
    assert "I accept" in english.text


def test_start_records_consent_with_the_page_ip_and_user_agent(client, channel):
    response = start(
        client, channel, consent_body(channel), REMOTE_ADDR="198.51.100.23", HTTP_USER_AGENT="UA/1"
    )
    assert response.status_code == 201, response.content
    record = ConsentRecord.objects.get()
    assert (record.address, record.ip, record.user_agent) == (
        "https://shop.example/cart",
        "198.51.100.23",
        "UA/1",
    )
    assert (record.method, record.origin, record.source_type) == (
        "clicked_accept",
        "livechat",
        "website",
    )
    assert record.conversation == Conversation.objects.get()
    assert Message.objects.get().text == "Hi"
    assert response.json()["record"] == str(record.uuid)


def test_start_without_accepting_stores_nothing(client, channel):
    response = start(
        client, channel, {"text": "Hi", "client_id": "x", "page_url": "https://shop.example/"}
    )
    assert response.status_code == 409 and response.json()["error"] == "consent_required"
    assert response.json()["consent"]["html"]
    stale = consent_body(channel)
    stale["consent"]["sha256"] = "0" * 64
    response = start(client, channel, stale)
    assert response.status_code == 409 and response.json()["error"] == "consent_changed"
    assert (Visitor.objects.count(), ConsentRecord.objects.count(), Message.objects.count()) == (
        0,
        0,
        0,
    )


def test_start_refuses_bad_input(client, channel):
    assert start(client, channel, consent_body(channel, text="x" * 4001)).status_code == 400
    assert start(client, channel, consent_body(channel, text="   ")).status_code == 400
    bad_json = client.post(
        f"/widget/{channel.code}/start", data="{nope", content_type="application/json"
    )
    assert bad_json.status_code == 400
    other_site = start(client, channel, consent_body(channel), HTTP_ORIGIN="https://evil.example")
    assert other_site.status_code == 403
    assert start(client, channel, consent_body(channel), token="forged:token").status_code == 401
    assert Visitor.objects.count() == 0


def test_with_the_warning_off_messages_go_straight_through(client, channel, administrator):
    update_consent_settings(
        actor=administrator, channel=channel, consent_enabled=False, agreement=None
    )
    frame = client.get(f"/widget/{channel.code}/frame")
    assert '"consent": null' in frame.text
    response = start(
        client, channel, {"text": "No gate", "client_id": "n1", "page_url": "https://shop.example/"}
    )
    assert response.status_code == 201
    assert ConsentRecord.objects.count() == 0 and Message.objects.get().text == "No gate"


def test_receipt_download_needs_the_visitor_token(client, channel):
    started, token = consented_visitor(channel)
    assert client.get(f"/widget/{channel.code}/receipt").status_code == 401
    response = client.get(f"/widget/{channel.code}/receipt", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert str(started.record.uuid) in response.content.decode()


def test_live_chat_settings_show_the_snippet_and_validate_origins(admin_client, channel):
    url = f"/console/contact-center/live-chat/{channel.pk}/"
    page = admin_client.get(url)
    assert (
        f"&lt;script src=&quot;http://testserver/widget/{channel.code}.js&quot; async&gt;&lt;/script&gt;"
        in page.text
    )
    bad = admin_client.post(url, {"allowed_origins": "https://shop.example/path\nnot a url"})
    assert bad.status_code == 200 and "leave out the path" in bad.text
    good = admin_client.post(
        url, {"allowed_origins": "https://Shop.example\nhttp://localhost:8080/\n"}
    )
    assert good.status_code == 302
    channel.refresh_from_db()
    assert channel.connector("livechat").config[CONFIG_KEY] == [
        "https://shop.example",
        "http://localhost:8080",
    ]
    connectors = admin_client.get(f"/console/contact-center/open-channels/{channel.pk}/connectors/")
    assert url in connectors.text


@pytest.mark.parametrize("username", ["otto", "audrey"])
def test_only_administrators_configure_the_widget(channel, auditor, username):
    from openline.accounts.models import User

    client = Client()
    client.force_login(User.objects.get(username=username))
    assert client.get(f"/console/contact-center/live-chat/{channel.pk}/").status_code == 403


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://*.example.com", ["https://*.example.com"]),
        ("HTTP://Shop.Example:8080/", ["http://shop.example:8080"]),
        ("https://a.example, https://a.example", ["https://a.example"]),
    ],
)
def test_allowed_websites_are_normalised(text, expected):
    from openline.livechat.origins import parse_origins

    assert parse_origins(text) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("http://[::1]:8001", "IPv6"),
        ("https://[2001:db8::1]", "IPv6"),
        ("https://*", "origin like"),
        ("ftp://example.com", "origin like"),
        ("https://example.com/shop", "leave out the path"),
    ],
)
def test_allowed_websites_refuse_what_browsers_would_ignore(text, complaint):
    from django.core.exceptions import ValidationError

    from openline.livechat.origins import parse_origins

    with pytest.raises(ValidationError) as caught:
        parse_origins(text)
    assert complaint in " ".join(caught.value.messages)
