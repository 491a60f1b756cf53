"""What the one-statement chat start hands to the Django view, through a real server process.

The server keeps the channel, its consent version and the webhook endpoints in memory; the
statement verifies them, so a change made by another process (this test) is never stored
stale: the view answers instead (409, 404, a replay, 422), and the next start is fresh.
"""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Visitor
from openline.livechat import tokens
from openline.livechat.models import StartKey
from openline.livechat.tests.helpers import accepted_for, start_body
from openline.testing.server_process import current_database_url, start_server
from openline.webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(tmp_path, postgres_only):
    servers = []

    def start(**env):
        started = start_server(database_url=current_database_url(), var_dir=tmp_path, env=env)
        servers.append(started)
        return started

    yield start
    for started in servers:
        started.stop()


def test_a_version_published_by_another_process_is_refused_then_taken(
    server, channel, administrator
):
    from openline.consent.services import update_agreement

    url = f"{server().url}/widget/{channel.code}/start"
    old = start_body(channel)
    assert httpx.post(url, json=old).status_code == 201  # the server now keeps this version
    update_agreement(actor=administrator, agreement=channel.agreement, texts={"en": "New text."})
    refused = httpx.post(url, content=json.dumps(old))
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "consent_changed"
    assert refused.json()["consent"]["sha256"] == accepted_for(channel).sha256
    taken = httpx.post(url, json=start_body(channel))
    assert taken.status_code == 201
    record = ConsentRecord.objects.get(uuid=taken.json()["record"])
    assert record.version_id == accepted_for(channel).version_id
    assert ConsentRecord.objects.filter(channel=channel).count() == 2


def test_a_renamed_channel_and_a_disabled_live_chat_are_never_stored_stale(
    server, channel, administrator
):
    from openline.openchannels.models import Connector

    url = f"{server().url}/widget/{channel.code}/start"
    assert httpx.post(url, json=start_body(channel)).status_code == 201
    type(channel).objects.filter(pk=channel.pk).update(name="Website (renamed)")
    renamed = httpx.post(url, json=start_body(channel))
    assert renamed.status_code == 201
    record = ConsentRecord.objects.get(uuid=renamed.json()["record"])
    assert record.evidence["channel"] == "Website (renamed)"
    Connector.objects.filter(channel=channel, kind="livechat").update(is_enabled=False)
    gone = httpx.post(url, json=start_body(channel))
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    assert Visitor.objects.filter(channel=channel).count() == 2


def test_a_new_endpoint_gets_the_outbox_rows_of_the_next_start(server, channel):
    url = f"{server().url}/widget/{channel.code}/start"
    assert httpx.post(url, json=start_body(channel)).status_code == 201
    endpoint = WebhookEndpoint.objects.create(
        url="https://hooks.example/in", events=["consent.given"], secret_encrypted="-"
    )
    answer = httpx.post(url, json=start_body(channel))
    assert answer.status_code == 201
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert [d.event.payload["data"]["record_id"] for d in deliveries] == [answer.json()["record"]]


def test_a_bearer_token_goes_to_the_view_and_continues_the_visitors_chat(server, channel):
    url = f"{server().url}/widget/{channel.code}/start"
    first = httpx.post(url, json=start_body(channel)).json()
    again = httpx.post(
        url,
        json=start_body(channel, text="A second question"),
        headers={"Authorization": f"Bearer {first['token']}"},
    )
    assert again.status_code == 201, again.text
    assert again.json()["visitor"] == first["visitor"]
    assert again.json()["conversation"]["id"] == first["conversation"]["id"]
    assert Visitor.objects.filter(channel=channel).count() == 1
    forged = httpx.post(url, json=start_body(channel), headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401


def test_a_known_key_is_replayed_and_another_body_is_refused(server, channel):
    url = f"{server().url}/widget/{channel.code}/start"
    key = {"Idempotency-Key": "replay-key-000000001"}
    body = json.dumps(start_body(channel))
    first = httpx.post(url, content=body, headers=key)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = httpx.post(url, content=body, headers=key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    for name in ("visitor", "conversation", "message", "record"):
        assert again.json()[name] == first.json()[name]
    assert (
        tokens.read_token(again.json()["token"], channel_code=channel.code)
        == (first.json()["visitor"])
    )
    other = httpx.post(url, json=start_body(channel, text="Another text"), headers=key)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_mismatch"
    assert Visitor.objects.filter(channel=channel).count() == 1
    assert StartKey.objects.filter(channel=channel).count() == 1


def test_concurrent_twins_with_one_key_make_one_capture(server, channel):
    url = f"{server().url}/widget/{channel.code}/start"
    body = json.dumps(start_body(channel))
    headers = {"Idempotency-Key": "twin-key-00000000001"}

    def post(_):
        return httpx.post(url, content=body, headers=headers, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.json()["record"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 7
    assert Visitor.objects.filter(channel=channel).count() == 1
    assert Conversation.objects.filter(channel=channel).count() == 1
    assert ConsentRecord.objects.filter(channel=channel).count() == 1


def test_forwarded_for_counts_only_from_a_trusted_proxy(server, channel):
    forged = {"X-Forwarded-For": "198.51.100.23"}
    direct = server()
    answer = httpx.post(
        f"{direct.url}/widget/{channel.code}/start", json=start_body(channel), headers=forged
    )
    assert ConsentRecord.objects.get(uuid=answer.json()["record"]).ip == "127.0.0.1"
    proxied = server(OPENLINE_TRUSTED_PROXIES="127.0.0.1/32")
    answer = httpx.post(
        f"{proxied.url}/widget/{channel.code}/start",
        json=start_body(channel),
        headers={"X-Forwarded-For": "203.0.113.50, 198.51.100.23"},
    )
    assert ConsentRecord.objects.get(uuid=answer.json()["record"]).ip == "198.51.100.23"


def test_the_start_limit_counts_each_start_once_on_either_path(server, channel):
    url = f"{server(OPENLINE_LIVECHAT_RATE_START='3/0.001').url}/widget/{channel.code}/start"
    stale = start_body(channel)
    stale["consent"]["sha256"] = "0" * 64  # the view answers 409: counted there, once
    statuses = [
        httpx.post(url, json=start_body(channel)).status_code,
        httpx.post(url, json=stale).status_code,
        httpx.post(url, json=start_body(channel)).status_code,
        httpx.post(url, json=start_body(channel)).status_code,
    ]
    assert statuses == [201, 409, 201, 429]
    assert ConsentRecord.objects.filter(channel=channel).count() == 2


def test_switched_off_every_start_takes_the_view(server, channel):
    url = f"{server(OPENLINE_CAPTURE_FAST='0').url}/widget/{channel.code}/start"
    answer = httpx.post(url, json=start_body(channel))
    assert answer.status_code == 201
    assert ConsentRecord.objects.filter(uuid=answer.json()["record"]).exists()
