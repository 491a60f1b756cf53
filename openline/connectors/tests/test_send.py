"""Sending operator replies through each platform: split, buttons, retries, permanent errors."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from django.db import connections
from django.utils import timezone

from openline.connectors import sender
from openline.connectors.tests.helpers import (
    FB_PSID,
    SECRETS,
    SEND_PATHS,
    answer_platform_apis,
)
from openline.connectors.tests.helpers import connect as connect_messenger
from openline.conversations import outbox
from openline.conversations.models import Conversation, Message, OutboxItem, Visitor
from openline.core import secrets as vault
from openline.testing.fake_platforms import Answer, fixture

BASE = "https://openline.example"
RECIPIENTS = {
    "telegram": "1001",
    "whatsapp": "15551234567",
    "facebook": FB_PSID,
    "viber": "01234567890A=",
}
CONSENT_BUTTONS = [
    {"id": "consent:accept", "title": "I accept"},
    {"id": "consent:decline", "title": "I decline"},
]


@pytest.fixture(autouse=True)
def own_key_file(settings, tmp_path):
    settings.OPENLINE_SECRETS_KEYS = ""
    settings.OPENLINE_SECRETS_KEY_FILE = str(tmp_path / "fernet.keys")
    vault.forget_cached_keys()
    yield
    vault.forget_cached_keys()


@pytest.fixture
def platform(fake_platform):
    answer_platform_apis(fake_platform)
    return fake_platform


def conversation_on(channel, kind: str) -> Conversation:
    """A connected messenger and a client's open conversation on it."""
    connect_messenger(channel, kind, base=BASE)
    visitor = Visitor.objects.create(
        origin=kind, channel=channel, external_id=RECIPIENTS[kind], name="Иван Петров"
    )
    return Conversation.objects.create(channel=channel, visitor=visitor, origin=kind)


def queued(conversation, text: str, buttons=()) -> OutboxItem:
    return outbox.enqueue(conversation=conversation, text=text, buttons=buttons)


def sends(platform, kind: str):
    return platform.calls(SEND_PATHS[kind])


def words(count: int) -> str:
    return " ".join(f"слово{i:05d}" for i in range(count))


# ----- splitting ---------------------------------------------------------------------------


def test_split_keeps_words_whole_and_every_part_within_the_limit():
    text = words(1000)  # 10 999 characters
    parts = sender.split_text(text, 4096)
    assert len(parts) == 3
    assert all(sender.utf16_length(part) <= 4096 for part in parts)
    assert " ".join(parts) == text
    assert all(not p.startswith(" ") and not p.endswith(" ") for p in parts)


def test_split_prefers_line_breaks_and_counts_emoji_as_telegram_does():
    text = ("a" * 60 + "\n") * 3
    assert sender.split_text(text, 100) == ["a" * 60, "a" * 60, "a" * 60 + "\n"]
    emoji = "😀" * 60  # 120 UTF-16 units
    parts = sender.split_text(emoji, 100)
    assert [len(p) for p in parts] == [50, 10] and "".join(parts) == emoji
    assert sender.split_text("short", 4096) == ["short"]
    assert sender.split_text("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]


@pytest.mark.parametrize(("kind", "limit"), [("telegram", 4096), ("facebook", 2000)])
def test_a_long_reply_goes_out_in_parts_in_order(db, channel, platform, kind, limit):
    conversation = conversation_on(channel, kind)
    text = words(1000)
    item = queued(conversation, text, buttons=CONSENT_BUTTONS)
    outcome = sender.send_item(item_id=item.pk)
    assert outcome.state == "sent"
    calls = sends(platform, kind)
    texts = [
        call.json()["text"] if kind == "telegram" else call.json()["message"]["text"]
        for call in calls
    ]
    assert len(texts) == len(sender.split_text(text, limit)) >= len(text) // limit + 1
    assert " ".join(texts) == text and all(len(t) <= limit for t in texts)
    # Buttons travel with the last part only.
    with_buttons = [
        "reply_markup" in call.json() or "quick_replies" in call.json().get("message", {})
        for call in calls
    ]
    assert with_buttons == [False] * (len(calls) - 1) + [True]
    item.refresh_from_db()
    message = Message.objects.get(pk=item.message_id)
    assert item.state == "sent" and message.delivery_state == "sent"
    # The message's platform id is the first part's.
    assert message.external_id == item.platform_message_id == outcome.platform_message_id


# ----- buttons in each platform's format ---------------------------------------------------


def test_buttons_are_sent_in_each_platforms_native_format(db, channel, platform):
    items = {
        kind: queued(conversation_on(channel, kind), "Do you accept?", CONSENT_BUTTONS)
        for kind in RECIPIENTS
    }
    for item in items.values():
        assert sender.send_item(item_id=item.pk).state == "sent"
    telegram = sends(platform, "telegram")[0].json()
    assert telegram["reply_markup"]["inline_keyboard"] == [
        [
            {"text": "I accept", "callback_data": "consent:accept"},
            {"text": "I decline", "callback_data": "consent:decline"},
        ]
    ]
    whatsapp = sends(platform, "whatsapp")[0].json()
    assert whatsapp["type"] == "interactive"
    assert [b["reply"]["id"] for b in whatsapp["interactive"]["action"]["buttons"]] == [
        "consent:accept",
        "consent:decline",
    ]
    messenger = sends(platform, "facebook")[0].json()
    assert [q["payload"] for q in messenger["message"]["quick_replies"]] == [
        "consent:accept",
        "consent:decline",
    ]
    viber = sends(platform, "viber")[0].json()
    assert viber["receiver"] == RECIPIENTS["viber"]
    assert [b["ActionBody"] for b in viber["keyboard"]["Buttons"]] == [
        "consent:accept",
        "consent:decline",
    ]


# ----- retries and permanent errors --------------------------------------------------------


def test_telegram_429_is_retried_after_the_platforms_delay_and_delivered_once(
    db, channel, platform
):
    conversation = conversation_on(channel, "telegram")
    platform.queue(
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
    item = queued(conversation, "Здравствуйте! Чем помочь?")
    started = timezone.now()
    first = sender.send_item(item_id=item.pk)
    assert first.state == "failed" and first.retry_at is not None
    assert (first.retry_at - started).total_seconds() >= 3  # honoured, not our shorter back-off
    item.refresh_from_db()
    assert item.state == "pending" and "Too Many Requests" in item.last_error
    # Not due yet: a worker that picks it up early leaves it alone.
    assert sender.send_item(item_id=item.pk).state == "skipped"
    time.sleep(max(0.0, (first.retry_at - timezone.now()).total_seconds()) + 0.05)
    assert sender.send_item(item_id=item.pk).state == "sent"
    assert len(sends(platform, "telegram")) == 2  # the refused one and the delivered one
    item.refresh_from_db()
    assert item.state == "sent" and item.attempts == 2
    assert Message.objects.get(pk=item.message_id).delivery_state == "sent"


def test_the_task_schedules_its_own_retry_at_the_platforms_time(db, channel, platform):
    from django_tasks_db.models import DBTaskResult

    from openline.connectors.sender_tasks import send_outbox_item

    conversation = conversation_on(channel, "viber")
    platform.queue(
        "POST", SEND_PATHS["viber"], Answer(200, fixture("viber_send_error_too_many_requests.json"))
    )
    item = queued(conversation, "Hello")
    assert send_outbox_item.call(item.pk) == {"item": item.pk, "state": "failed"}
    item.refresh_from_db()
    task = DBTaskResult.objects.get(
        task_path="openline.connectors.sender_tasks.send_outbox_item", args_kwargs__args=[item.pk]
    )
    assert task.run_after == item.next_attempt_at > timezone.now()


def test_a_committed_item_is_handed_to_the_worker(
    db, channel, platform, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    conversation = conversation_on(channel, "telegram")
    with django_capture_on_commit_callbacks(execute=True):
        item = queued(conversation, "Hello")
    task = DBTaskResult.objects.get(task_path="openline.connectors.sender_tasks.send_outbox_item")
    assert task.args_kwargs["args"] == [item.pk] and task.status == "READY"


@pytest.mark.parametrize(
    ("kind", "answer", "shown"),
    [
        ("telegram", Answer(403, fixture("telegram_error_403_blocked.json")), "blocked"),
        ("whatsapp", Answer(400, fixture("whatsapp_send_error_131047.json")), "24-hour"),
        ("viber", Answer(200, fixture("viber_send_error_not_subscribed.json")), "ubscri"),
    ],
    ids=["telegram-blocked", "whatsapp-window-closed", "viber-not-subscribed"],
)
def test_a_permanent_error_is_shown_on_the_message_and_not_retried(
    db, channel, platform, kind, answer, shown
):
    conversation = conversation_on(channel, kind)
    platform.queue("POST", SEND_PATHS[kind], answer)
    item = queued(conversation, "Are you still there?")
    outcome = sender.send_item(item_id=item.pk)
    assert outcome.state == "failed" and outcome.retry_at is None
    item.refresh_from_db()
    assert item.state == "failed" and item.permanent
    message = Message.objects.get(pk=item.message_id)
    assert message.delivery_state == "failed" and shown in message.delivery_error
    assert sender.send_item(item_id=item.pk).state == "skipped"
    assert len(sends(platform, kind)) == 1


def test_a_failure_after_the_first_part_never_resends_what_went_out(db, channel, platform):
    conversation = conversation_on(channel, "facebook")
    platform.queue(
        "POST",
        SEND_PATHS["facebook"],
        Answer(200, {"recipient_id": FB_PSID, "message_id": "m_FIRST"}),
        Answer(400, fixture("messenger_send_error.json")),
    )
    item = queued(conversation, words(300))  # two parts of at most 2000 characters
    assert sender.send_item(item_id=item.pk).state == "failed"
    item.refresh_from_db()
    assert item.state == "failed" and item.last_error.startswith("Sent 1 of 2 parts")


def test_a_disconnected_messenger_fails_the_send_permanently(db, channel, platform, administrator):
    from openline.connectors import setup
    from openline.openchannels.models import Connector

    conversation = conversation_on(channel, "telegram")
    setup.disconnect(actor=administrator, connector=Connector.objects.get(kind="telegram"))
    item = queued(conversation, "Hello")
    assert sender.send_item(item_id=item.pk).state == "failed"
    item.refresh_from_db()
    assert item.permanent and item.last_error == "The messenger is disconnected."
    assert not sends(platform, "telegram")


@pytest.mark.parametrize(
    "change", [{"is_enabled": False}, {"state": "not_connected"}], ids=["disabled", "state"]
)
def test_a_switched_off_connector_with_credentials_left_sends_nothing(
    db, channel, platform, change
):
    from openline.openchannels.models import Connector

    conversation = conversation_on(channel, "telegram")
    # Credentials still stored (e.g. another process's view, or a partial disconnect).
    Connector.objects.filter(kind="telegram").update(**change)
    item = queued(conversation, "Hello")
    assert sender.send_item(item_id=item.pk).state == "failed"
    item.refresh_from_db()
    assert item.permanent and item.last_error == "The messenger is disconnected."
    assert not sends(platform, "telegram")


# ----- exactly once ------------------------------------------------------------------------


def test_two_workers_at_once_send_the_item_once(transactional_db, channel, platform):
    conversation = conversation_on(channel, "telegram")
    # A slow platform: both workers are surely inside send_item at the same time.
    platform.queue(
        "POST",
        SEND_PATHS["telegram"],
        Answer(200, fixture("telegram_send_message_response.json"), delay=0.5),
    )
    item = queued(conversation, "Only once, please")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def worker() -> None:
        try:
            barrier.wait()
            outcomes.append(sender.send_item(item_id=item.pk).state)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["sent", "skipped"]
    assert len(sends(platform, "telegram")) == 1
    item.refresh_from_db()
    assert item.state == "sent" and item.attempts == 1


def test_secrets_are_never_logged_while_sending(db, channel, platform, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="openline")
    for kind in RECIPIENTS:
        conversation = conversation_on(channel, kind)
        sender.send_item(item_id=queued(conversation, "Hello").pk)
        platform.queue("POST", SEND_PATHS[kind], Answer(500, {"error": "boom"}))
        sender.send_item(item_id=queued(conversation, "Again").pk)
    platform.stop()  # unreachable: the connection error path logs too
    sender.send_item(item_id=queued(conversation, "Down").pk)
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert "HTTP Request: POST" in logged  # httpx's lines were captured, scrubbed
    values = [value for kind in SECRETS for value in SECRETS[kind].values()]
    assert [value for value in values if value in logged] == []
