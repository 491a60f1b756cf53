"""A chat start carries an Idempotency-Key: a retried start never makes a second chat or record."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import uuid

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.test import Client
from django.utils import timezone

from openline.consent.models import ConsentRecord
from openline.conversations.events import channel_group
from openline.conversations.models import Conversation, Message, Visitor
from openline.livechat import tokens
from openline.livechat.models import StartKey
from openline.livechat.tests.helpers import accepted_for
from openline.testing.server_process import current_database_url, start_server


def _body(channel, text="Hello, do you ship to Norway?") -> bytes:
    accepted = accepted_for(channel)
    consent = {
        "version": accepted.version_id,
        "language": accepted.language,
        "sha256": accepted.sha256,
    }
    return json.dumps({"text": text, "language": "en", "consent": consent}).encode()


def _counts(channel) -> tuple[int, int, int, int]:
    return (
        Visitor.objects.filter(channel=channel).count(),
        ConsentRecord.objects.filter(channel=channel).count(),
        Conversation.objects.filter(channel=channel).count(),
        Message.objects.filter(conversation__channel=channel).count(),
    )


def _post(client: Client, channel, body: bytes, key: str):
    return client.post(
        f"/widget/{channel.code}/start",
        body,
        content_type="application/json",
        headers={"Idempotency-Key": key},
    )


@pytest.mark.django_db
def test_same_key_twice_answers_the_same_capture(channel):
    client, key, body = Client(), "start-" + uuid.uuid4().hex, _body(channel)
    first = _post(client, channel, body, key)
    again = _post(client, channel, body, key)
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    a, b = first.json(), again.json()
    for field in ("visitor", "conversation", "message", "record"):
        assert a[field] == b[field]
    # A fresh token, for the same visitor.
    assert tokens.read_token(b["token"], channel_code=channel.code) == a["visitor"]
    assert _counts(channel) == (1, 1, 1, 1)
    # Another key is another start.
    assert _post(client, channel, body, "start-" + uuid.uuid4().hex).status_code == 201
    assert _counts(channel) == (2, 2, 2, 2)


@pytest.mark.django_db
def test_same_key_with_another_body_is_refused(channel):
    client, key = Client(), "k" * 32
    assert _post(client, channel, _body(channel), key).status_code == 201
    refused = _post(client, channel, _body(channel, text="Something else"), key)
    assert refused.status_code == 422
    assert refused.json()["error"] == "idempotency_mismatch"
    assert _counts(channel) == (1, 1, 1, 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key", ["short", "x" * 65, "has space in it 1234", "ключ-ключ-ключ-ключ", ""]
)
def test_bad_keys_are_refused_with_400(channel, key):
    response = _post(Client(), channel, _body(channel), key)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_idempotency_key"
    assert _counts(channel) == (0, 0, 0, 0)


@pytest.mark.django_db
def test_a_replayed_start_publishes_no_events(channel, django_capture_on_commit_callbacks):
    client, key, body = Client(), "replay-" + uuid.uuid4().hex, _body(channel)

    def start_once() -> tuple[int, int]:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = _post(client, channel, body, key)
        return response.status_code, len(callbacks)

    async def drain(layer, inbox) -> list:
        got = []
        while True:
            try:
                got.append(await asyncio.wait_for(layer.receive(inbox), timeout=0.5))
            except TimeoutError:
                return got

    async def scenario():
        # One event loop for the operator's side (the Redis layer binds to its first loop);
        # the starts run on this test's thread, in its database transaction.
        layer = get_channel_layer()
        inbox = await layer.new_channel()
        await layer.group_add(channel_group(channel.pk), inbox)
        first = await sync_to_async(start_once)()
        published = await drain(layer, inbox)
        again = await sync_to_async(start_once)()
        republished = await drain(layer, inbox)
        return first, published, again, republished

    first, published, again, republished = async_to_sync(scenario)()
    assert first[0] == again[0] == 201
    assert published, "the first start publishes its events to the operators"
    assert again[1] == 0 and republished == []


@pytest.mark.django_db
def test_keys_older_than_a_day_are_purged_by_the_hourly_retention_job(channel, settings):
    from openline.crm.tasks import purge_unconfirmed_task

    client = Client()
    old_key, new_key = "old-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex
    assert _post(client, channel, _body(channel), old_key).status_code == 201
    assert _post(client, channel, _body(channel), new_key).status_code == 201
    StartKey.objects.filter(key=old_key).update(created_at=timezone.now() - dt.timedelta(hours=25))
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    purge_unconfirmed_task.enqueue()
    assert list(StartKey.objects.values_list("key", flat=True)) == [new_key]


def _age(key: str) -> None:
    StartKey.objects.filter(key=key).update(created_at=timezone.now() - dt.timedelta(hours=25))


@pytest.mark.django_db
def test_a_key_past_its_day_that_is_not_purged_yet_starts_a_new_chat(channel):
    client, key, body = Client(), "late-" + uuid.uuid4().hex, _body(channel)
    first = _post(client, channel, body, key)
    _age(key)
    again = _post(client, channel, body, key)
    assert first.status_code == again.status_code == 201, again.content
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["record"] != first.json()["record"]
    assert _counts(channel) == (2, 2, 2, 2)
    # The key now names the new start, for another day.
    assert StartKey.objects.get(key=key).visitor_public_id.hex == again.json()["visitor"]
    assert _post(client, channel, body, key).headers["Idempotent-Replayed"] == "true"


@pytest.mark.django_db(transaction=True)
def test_a_key_past_its_day_through_a_server_process(channel, tmp_path):
    """The same through a real server (on PostgreSQL the one-statement path sees the old key
    and hands the start to the view); concurrent reuses still make one chat."""
    server = start_server(database_url=current_database_url(), var_dir=tmp_path)
    try:
        url = f"{server.url}/widget/{channel.code}/start"
        key, body = "late-" + uuid.uuid4().hex, _body(channel)
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        first = httpx.post(url, content=body, headers=headers, timeout=30)
        assert first.status_code == 201
        _age(key)
        answers: list[httpx.Response] = []
        gate = threading.Barrier(4)

        def send() -> None:
            gate.wait()
            answers.append(httpx.post(url, content=body, headers=headers, timeout=30))

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
        assert len({a.json()["record"] for a in answers}) == 1
        assert first.json()["record"] not in {a.json()["record"] for a in answers}
        assert _counts(channel) == (2, 2, 2, 2)
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_one_key_across_two_server_processes_and_concurrent_retries(channel, tmp_path):
    servers = [
        start_server(database_url=current_database_url(), var_dir=tmp_path / str(n))
        for n in range(2)
    ]
    try:
        path = f"/widget/{channel.code}/start"
        key, body = "retry-" + uuid.uuid4().hex, _body(channel)
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        first = httpx.post(servers[0].url + path, content=body, headers=headers)
        again = httpx.post(servers[1].url + path, content=body, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["record"] == first.json()["record"]
        assert _counts(channel) == (1, 1, 1, 1)

        # Eight retries of one new start at once, spread over both processes.
        key = "burst-" + uuid.uuid4().hex
        headers["Idempotency-Key"] = key
        answers: list[httpx.Response] = []
        gate = threading.Barrier(8)

        def send(n: int) -> None:
            gate.wait()
            target = servers[n % 2].url + path
            answers.append(httpx.post(target, content=body, headers=headers, timeout=30))

        threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
        assert len({a.json()["record"] for a in answers}) == 1
        assert len({a.json()["visitor"] for a in answers}) == 1
        assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 7
        assert _counts(channel) == (2, 2, 2, 2)
    finally:
        for server in servers:
            server.stop()
