"""The widget's chat start through a real server process: its lean thread-pool path keeps every rule."""

from __future__ import annotations

import json

import httpx
import pytest

from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Message, Visitor
from openline.livechat import tokens
from openline.livechat.tests.helpers import accepted_for, start_body
from openline.testing.server_process import current_database_url, start_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(tmp_path):
    servers = []

    def start(**env):
        started = start_server(database_url=current_database_url(), var_dir=tmp_path, env=env)
        servers.append(started)
        return started

    yield start
    for started in servers:
        started.stop()


def test_accepted_start_is_stored_and_answered_after_commit(server, channel):
    srv = server()
    response = httpx.post(f"{srv.url}/widget/{channel.code}/start", json=start_body(channel))
    assert response.status_code == 201, response.text
    data = response.json()
    assert "no-store" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in response.headers
    visitor = Visitor.objects.get(public_id=data["visitor"])
    record = ConsentRecord.objects.get(uuid=data["record"])
    assert record.visitor_id == visitor.pk and record.channel_id == channel.pk
    assert record.state == "given" and record.address == "https://shop.example/pricing"
    conversation = Conversation.objects.get(pk=data["conversation"]["id"])
    assert record.conversation_id == conversation.pk
    message = Message.objects.get(pk=data["message"]["id"])
    assert message.text == "Hello, is the team plan monthly?"
    assert conversation.last_message_preview == message.text and conversation.unread_count == 1
    assert tokens.read_token(data["token"], channel_code=channel.code) == visitor.public_id.hex


def test_ip_comes_from_trusted_proxies_only(server, channel):
    forged = {"X-Forwarded-For": "198.51.100.23"}
    direct = server()
    response = httpx.post(
        f"{direct.url}/widget/{channel.code}/start", json=start_body(channel), headers=forged
    )
    assert response.status_code == 201
    assert ConsentRecord.objects.get(uuid=response.json()["record"]).ip == "127.0.0.1"

    behind_proxy = server(OPENLINE_TRUSTED_PROXIES="127.0.0.1/32")
    response = httpx.post(
        f"{behind_proxy.url}/widget/{channel.code}/start", json=start_body(channel), headers=forged
    )
    assert response.status_code == 201
    assert ConsentRecord.objects.get(uuid=response.json()["record"]).ip == "198.51.100.23"


def test_bad_input_gets_clear_4xx_and_stores_nothing(server, channel):
    srv = server()
    url = f"{srv.url}/widget/{channel.code}/start"
    cases = [
        (httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"}), 400),
        (httpx.post(url, json=["a", "list"]), 400),
        (httpx.post(url, json=start_body(channel, text="")), 400),
        (httpx.post(url, content=b'{"text": "' + b"x" * 30_000 + b'"}'), 413),
        (
            httpx.post(url, json=start_body(channel), headers={"Origin": "https://evil.example"}),
            403,
        ),
        (httpx.post(f"{srv.url}/widget/nope/start", json=start_body(channel)), 404),
        (httpx.post(url, json={"text": "Hi"}), 409),
        (httpx.post(url, json=start_body(channel), headers={"Host": "evil.example"}), 400),
        (httpx.get(url), 405),
    ]
    for response, status in cases:
        assert response.status_code == status, (status, response.text[:200])
        if status != 405 and response.headers.get("content-type") == "application/json":
            assert "error" in response.json()
    changed = start_body(channel)
    changed["consent"]["sha256"] = "0" * 64
    refused = httpx.post(url, json=changed)
    assert refused.status_code == 409 and refused.json()["error"] == "consent_changed"
    assert refused.json()["consent"]["sha256"] == accepted_for(channel).sha256
    assert not Visitor.objects.filter(channel=channel).exists()
    assert not ConsentRecord.objects.filter(channel=channel).exists()


def test_start_limit_per_ip_answers_429(server, channel):
    srv = server(OPENLINE_LIVECHAT_RATE_START="2/0.01")
    url = f"{srv.url}/widget/{channel.code}/start"
    statuses = [httpx.post(url, json=start_body(channel)).status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    assert ConsentRecord.objects.filter(channel=channel).count() == 2


def test_a_published_new_version_is_required_at_once(server, channel, administrator):
    from openline.consent.services import update_agreement

    srv = server()
    url = f"{srv.url}/widget/{channel.code}/start"
    old = start_body(channel)
    assert httpx.post(url, json=old).status_code == 201
    update_agreement(actor=administrator, agreement=channel.agreement, texts={"en": "New wording."})
    refused = httpx.post(url, content=json.dumps(old))
    assert refused.status_code == 409 and refused.json()["error"] == "consent_changed"
    assert httpx.post(url, json=start_body(channel)).status_code == 201
