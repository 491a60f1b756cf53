"""A committed reply is sent by a real ``manage.py db_worker``, retried at the platform's time.

Telegram answers the first send with 429 ``retry_after``; the worker's task re-enqueues
itself for then, and the second attempt delivers the message: one delivered message, the
delay honoured. A blocked bot (403) is given up at once and shown on the message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from openline.connectors.tests.helpers import SEND_PATHS, answer_platform_apis
from openline.connectors.tests.helpers import connect as connect_messenger
from openline.conversations import outbox
from openline.conversations.models import Conversation, Message, OutboxItem, Visitor
from openline.core import secrets as vault
from openline.testing.fake_platforms import Answer, fixture

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def own_keys(settings):
    """Keys in the environment, so the worker process reads what this process encrypts."""
    from cryptography.fernet import Fernet

    settings.OPENLINE_SECRETS_KEYS = Fernet.generate_key().decode()
    vault.forget_cached_keys()
    yield settings.OPENLINE_SECRETS_KEYS
    vault.forget_cached_keys()


@pytest.fixture
def worker(fake_platform, own_keys, tmp_path):
    """``manage.py db_worker`` on the test database, pointed at the fake platform."""
    from openline.testing.server_process import current_database_url

    dropped = ("DJANGO_SETTINGS_MODULE", "REDIS_URL", "OPENLINE_ENV")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "openline.settings",
            "DATABASE_URL": current_database_url(),
            "OPENLINE_VAR_DIR": str(tmp_path),
            "OPENLINE_SECRET_KEY": django_settings.SECRET_KEY,
            "OPENLINE_LOG_LEVEL": "ERROR",
            "OPENLINE_SECRETS_KEYS": own_keys,
            "OPENLINE_TELEGRAM_API_URL": fake_platform.base_url,
            "OPENLINE_GRAPH_API_URL": fake_platform.base_url + "/v21.0",
            "OPENLINE_VIBER_API_URL": fake_platform.base_url,
        }
    )
    process = subprocess.Popen(
        [
            *(sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay"),
            *("--interval", "0.2"),
        ],
        cwd=ROOT,
        env=env,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(condition, *, timeout: float = 30.0, what: str = "the worker"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def telegram_conversation(channel) -> Conversation:
    connect_messenger(channel, "telegram", base="https://openline.example")
    visitor = Visitor.objects.create(
        origin="telegram", channel=channel, external_id="1001", name="Иван Петров"
    )
    return Conversation.objects.create(channel=channel, visitor=visitor, origin="telegram")


def settled(item_id: int) -> OutboxItem | None:
    item = OutboxItem.objects.get(pk=item_id)
    return item if item.state in ("sent", "failed") else None


def test_429_then_success_through_the_worker(channel, fake_platform, worker):
    answer_platform_apis(fake_platform)
    conversation = telegram_conversation(channel)
    fake_platform.queue(
        "POST",
        SEND_PATHS["telegram"],
        Answer(
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 3",
                "parameters": {"retry_after": 3},
            },
        ),
    )
    with transaction.atomic():
        item = outbox.enqueue(conversation=conversation, text="Ваш заказ в пути.")
    item = wait_for(lambda: settled(item.pk), what="the reply to be sent")
    assert item.state == "sent" and item.attempts == 2
    assert (item.sent_at - item.created_at).total_seconds() >= 3
    calls = fake_platform.calls(SEND_PATHS["telegram"])
    assert len(calls) == 2 and all(c.json()["text"] == "Ваш заказ в пути." for c in calls)
    message = Message.objects.get(pk=item.message_id)
    assert message.delivery_state == "sent" and message.external_id == item.platform_message_id


def test_a_blocked_bot_is_shown_on_the_message_by_the_worker(channel, fake_platform, worker):
    answer_platform_apis(fake_platform)
    conversation = telegram_conversation(channel)
    fake_platform.queue(
        "POST", SEND_PATHS["telegram"], Answer(403, fixture("telegram_error_403_blocked.json"))
    )
    with transaction.atomic():
        item = outbox.enqueue(conversation=conversation, text="Hello?")
    item = wait_for(lambda: settled(item.pk), what="the send to be given up")
    assert item.state == "failed" and item.permanent and item.attempts == 1
    message = Message.objects.get(pk=item.message_id)
    assert message.delivery_state == "failed" and "blocked" in message.delivery_error
    time.sleep(1)  # nothing retries it
    assert len(fake_platform.calls(SEND_PATHS["telegram"])) == 1
