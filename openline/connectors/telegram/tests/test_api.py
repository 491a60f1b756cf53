"""Telegram API calls against the loopback fake platform: exact request bodies, error mapping."""

from __future__ import annotations

import logging
import socket

import pytest

from openline.connectors.base import (
    DELIVERY_UNCERTAIN,
    Button,
    ClientEvent,
    ClientIdentity,
    InboundMessage,
    Outgoing,
    TransportError,
)
from openline.connectors.telegram import PLATFORM
from openline.connectors.telegram.tests.hangup import hang_up_server
from openline.testing.fake_platforms import Answer, fixture

TOKEN = "999000111:AAFakeTokenForTests_abcdefghijklmnopq"
SECRET = "cc_TgWebhookSecret-0123456789abcdef"
SECRETS = {"bot_token": TOKEN, "secret_token": SECRET}
BOT = f"/bot{TOKEN}"
CONSENT_TEXT = (
    "Please confirm that you consent to processing of your personal data: "
    "https://cc.example.com/c/FakeConsentV1xYz"
)
CONSENT_BUTTONS = (Button("consent:accept", "I accept"), Button("consent:decline", "I decline"))


@pytest.fixture
def logs(caplog):
    """Capture every log line (httpx logs request URLs at INFO) to check for the token."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    assert TOKEN not in caplog.text
    assert TOKEN.split(":")[1] not in caplog.text


def test_send_plain_text(fake_platform, logs):
    fake_platform.route(
        "POST", f"{BOT}/sendMessage", fixture("telegram_send_message_response.json")
    )
    text = "Hello <b>Ivan</b> & *friends*"
    message_id = PLATFORM.send(
        Outgoing(recipient="111222333", text=text), secrets=SECRETS, config={}
    )
    assert message_id == "43"
    [call] = fake_platform.calls(f"{BOT}/sendMessage")
    # Plain text: no parse_mode, so the client's text goes out verbatim, never as markup.
    assert call.json() == {"chat_id": 111222333, "text": text}
    assert call.headers["content-type"] == "application/json"


def test_send_with_buttons_is_an_inline_keyboard(fake_platform, logs):
    fake_platform.route(
        "POST", f"{BOT}/sendMessage", fixture("telegram_send_message_response.json")
    )
    outgoing = Outgoing(recipient="111222333", text=CONSENT_TEXT, buttons=CONSENT_BUTTONS)
    assert PLATFORM.send(outgoing, secrets=SECRETS, config={}) == "43"
    [call] = fake_platform.calls(f"{BOT}/sendMessage")
    assert call.json() == fixture("telegram_send_message_request_inline_keyboard.json")


def test_a_versioned_consent_button_fits_and_is_sent_unchanged(fake_platform, logs):
    fake_platform.route(
        "POST", f"{BOT}/sendMessage", fixture("telegram_send_message_response.json")
    )
    largest = "consent:decline:9223372036854775807"  # the largest version id: 35 bytes
    buttons = (Button("consent:accept:9223372036854775807", "I accept"), Button(largest, "No"))
    PLATFORM.send(Outgoing(recipient="1", text="?", buttons=buttons), secrets=SECRETS, config={})
    [call] = fake_platform.calls(f"{BOT}/sendMessage")
    [row] = call.json()["reply_markup"]["inline_keyboard"]
    assert [key["callback_data"] for key in row] == [buttons[0].id, largest]


def test_a_button_id_longer_than_telegram_allows_is_refused_before_sending(fake_platform):
    outgoing = Outgoing(recipient="1", text="x", buttons=(Button("x" * 65, "Too long"),))
    with pytest.raises(TransportError) as caught:
        PLATFORM.send(outgoing, secrets=SECRETS, config={})
    assert caught.value.permanent
    assert fake_platform.requests == []


@pytest.mark.parametrize(
    ("name", "status", "permanent", "retry_after", "words"),
    [
        ("telegram_error_429.json", 429, False, 7.0, "flood"),
        ("telegram_error_403_blocked.json", 403, True, None, "blocked the bot"),
        ("telegram_error_400_chat_not_found.json", 400, True, None, "chat not found"),
    ],
)
def test_send_errors_are_mapped(fake_platform, logs, name, status, permanent, retry_after, words):
    fake_platform.route("POST", f"{BOT}/sendMessage", Answer(status=status, body=fixture(name)))
    with pytest.raises(TransportError) as caught:
        PLATFORM.send(Outgoing(recipient="111222333", text="Hi"), secrets=SECRETS, config={})
    assert caught.value.permanent is permanent
    assert caught.value.retry_after == retry_after
    assert words in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_429_without_parameters_uses_the_retry_after_header(fake_platform):
    body = {"ok": False, "error_code": 429, "description": "Too Many Requests"}
    fake_platform.route(
        "POST", f"{BOT}/sendMessage", Answer(status=429, body=body, headers={"Retry-After": "3"})
    )
    with pytest.raises(TransportError) as caught:
        PLATFORM.send(Outgoing(recipient="1", text="Hi"), secrets=SECRETS, config={})
    assert (caught.value.permanent, caught.value.retry_after) == (False, 3.0)


@pytest.mark.parametrize(
    "answer",
    [
        Answer(status=502, body="<html>Bad Gateway</html>"),
        Answer(status=500, body={"ok": False, "error_code": 500, "description": "Internal"}),
        Answer(status=200, body={"ok": True, "result": {"no": "message_id"}}),
    ],
)
def test_server_errors_are_temporary(fake_platform, logs, answer):
    fake_platform.route("POST", f"{BOT}/sendMessage", answer)
    with pytest.raises(TransportError) as caught:
        PLATFORM.send(Outgoing(recipient="1", text="Hi"), secrets=SECRETS, config={})
    assert not caught.value.permanent
    assert TOKEN not in str(caught.value)


def test_a_send_timeout_is_uncertain_permanent_and_names_no_token(fake_platform, settings, logs):
    # Telegram may have delivered the message: retrying could send it twice.
    settings.OPENLINE_MESSENGER_TIMEOUT = 0.3
    fake_platform.route("POST", f"{BOT}/sendMessage", Answer(body={"ok": True}, delay=1.0))
    with pytest.raises(TransportError) as caught:
        PLATFORM.send(Outgoing(recipient="1", text="Hi"), secrets=SECRETS, config={})
    assert caught.value.permanent
    assert caught.value.message == DELIVERY_UNCERTAIN
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert TOKEN not in str(caught.value)
    assert len(fake_platform.calls(f"{BOT}/sendMessage")) == 1


def test_a_broken_connection_after_the_send_was_written_is_uncertain(settings, logs):
    with hang_up_server() as base:
        settings.OPENLINE_TELEGRAM_API_URL = base
        with pytest.raises(TransportError) as caught:
            PLATFORM.send(Outgoing(recipient="1", text="Hi"), secrets=SECRETS, config={})
    assert (caught.value.permanent, caught.value.message) == (True, DELIVERY_UNCERTAIN)


def test_a_timeout_outside_sending_stays_temporary(fake_platform, settings, logs):
    settings.OPENLINE_MESSENGER_TIMEOUT = 0.3
    fake_platform.route("POST", f"{BOT}/getMe", Answer(body={"ok": True}, delay=1.0))
    with pytest.raises(TransportError) as caught:
        PLATFORM.connect(secrets=SECRETS, config={}, webhook_url="")
    assert not caught.value.permanent
    assert "in time" in caught.value.message


def test_an_unreachable_api_is_temporary_and_names_no_token(settings, logs):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.OPENLINE_TELEGRAM_API_URL = f"http://127.0.0.1:{port}"
    with pytest.raises(TransportError) as caught:
        PLATFORM.send(Outgoing(recipient="1", text="Hi"), secrets=SECRETS, config={})
    assert not caught.value.permanent
    assert TOKEN not in str(caught.value)


def test_connect_checks_the_bot_and_sets_the_webhook(fake_platform, logs):
    fake_platform.route("POST", f"{BOT}/getMe", fixture("telegram_get_me_response.json"))
    fake_platform.route("POST", f"{BOT}/setWebhook", fixture("telegram_set_webhook_response.json"))
    expected = fixture("telegram_set_webhook_request.json")
    result = PLATFORM.connect(secrets=SECRETS, config={}, webhook_url=expected["url"])
    assert result.confirmed
    assert result.detail == "@cc_support_test_bot"
    assert result.config == {"bot_id": 999000111, "username": "cc_support_test_bot"}
    assert [r.path for r in fake_platform.requests] == [f"{BOT}/getMe", f"{BOT}/setWebhook"]
    assert fake_platform.calls(f"{BOT}/setWebhook")[0].json() == expected


def test_connect_for_long_polling_removes_the_webhook(fake_platform, logs):
    fake_platform.route("POST", f"{BOT}/getMe", fixture("telegram_get_me_response.json"))
    fake_platform.route(
        "POST", f"{BOT}/deleteWebhook", fixture("telegram_set_webhook_response.json")
    )
    result = PLATFORM.connect(secrets=SECRETS, config={}, webhook_url="")
    assert (result.confirmed, result.detail) == (True, "@cc_support_test_bot")
    assert [r.path for r in fake_platform.requests] == [f"{BOT}/getMe", f"{BOT}/deleteWebhook"]
    assert fake_platform.requests[1].json() == {"drop_pending_updates": False}


def test_connect_with_a_bad_token_fails_permanently(fake_platform, logs):
    body = {"ok": False, "error_code": 401, "description": "Unauthorized"}
    fake_platform.route("POST", f"{BOT}/getMe", Answer(status=401, body=body))
    with pytest.raises(TransportError) as caught:
        PLATFORM.connect(secrets=SECRETS, config={}, webhook_url="https://cc.example.com/h")
    assert caught.value.permanent
    assert TOKEN not in str(caught.value)
    assert fake_platform.calls(f"{BOT}/setWebhook") == []


def test_connect_with_a_refused_webhook_url_fails_permanently(fake_platform):
    fake_platform.route("POST", f"{BOT}/getMe", fixture("telegram_get_me_response.json"))
    body = {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: bad webhook: HTTPS url must be provided for webhook",
    }
    fake_platform.route("POST", f"{BOT}/setWebhook", Answer(status=400, body=body))
    with pytest.raises(TransportError) as caught:
        PLATFORM.connect(secrets=SECRETS, config={}, webhook_url="http://cc.example.com/h")
    assert caught.value.permanent
    assert "HTTPS url must be provided" in caught.value.message


def test_connect_without_a_token_fails_before_calling(fake_platform):
    with pytest.raises(TransportError) as caught:
        PLATFORM.connect(secrets={}, config={}, webhook_url="")
    assert caught.value.permanent
    assert fake_platform.requests == []


def test_disconnect_removes_the_webhook_and_tolerates_failure(fake_platform, logs):
    fake_platform.queue("POST", f"{BOT}/deleteWebhook", Answer(status=502, body="down"))
    PLATFORM.disconnect(secrets=SECRETS, config={})
    fake_platform.route("POST", f"{BOT}/deleteWebhook", {"ok": True, "result": True})
    PLATFORM.disconnect(secrets=SECRETS, config={})
    assert len(fake_platform.calls(f"{BOT}/deleteWebhook")) == 2


def test_poll_returns_events_and_the_next_offset(fake_platform, logs):
    fake_platform.route("POST", f"{BOT}/getUpdates", fixture("telegram_get_updates_response.json"))
    events, offset = PLATFORM.poll(secrets=SECRETS, offset=700000107, timeout=25)
    assert offset == 700000109
    [message, press] = events
    assert isinstance(message, InboundMessage) and isinstance(press, InboundMessage)
    assert (message.key, message.text) == ("700000107", "What personal data do you keep about me?")
    assert (press.key, press.button, press.text) == ("700000108", "consent:decline", "I decline")
    assert press.platform_message_id == "4776143213165740102"
    assert fake_platform.calls(f"{BOT}/getUpdates")[0].json() == {
        "offset": 700000107,
        "timeout": 25,
        "allowed_updates": ["message", "edited_message", "callback_query", "my_chat_member"],
    }


def test_poll_keys_events_by_the_bot_id_when_it_is_known(fake_platform):
    fake_platform.route("POST", f"{BOT}/getUpdates", fixture("telegram_get_updates_response.json"))
    events, _ = PLATFORM.poll(
        secrets=SECRETS, offset=700000107, timeout=0, config={"bot_id": 999000111}
    )
    assert [event.key for event in events] == ["999000111:700000107", "999000111:700000108"]


def test_an_empty_poll_keeps_the_offset(fake_platform):
    fake_platform.route("POST", f"{BOT}/getUpdates", {"ok": True, "result": []})
    assert PLATFORM.poll(secrets=SECRETS, offset=12, timeout=0) == ([], 12)


def test_the_long_poll_outlasts_the_ordinary_timeout(fake_platform, settings):
    # Telegram holds an empty getUpdates open for `timeout` seconds; that is no failure.
    settings.OPENLINE_MESSENGER_TIMEOUT = 0.3
    fake_platform.route(
        "POST", f"{BOT}/getUpdates", Answer(body={"ok": True, "result": []}, delay=0.8)
    )
    assert PLATFORM.poll(secrets=SECRETS, offset=5, timeout=1) == ([], 5)


def test_a_malformed_update_in_a_batch_is_skipped_not_stuck(fake_platform):
    good = fixture("telegram_get_updates_response.json")["result"][0]
    batch = {"ok": True, "result": [{"update_id": 41, "message": "garbage"}, good]}
    fake_platform.route("POST", f"{BOT}/getUpdates", batch)
    events, offset = PLATFORM.poll(secrets=SECRETS, offset=0, timeout=0)
    assert offset == 700000108
    assert events[0] == ClientEvent(
        key="41", client=ClientIdentity(external_id=""), event="ignored"
    )
    assert isinstance(events[1], InboundMessage)


def test_poll_while_a_webhook_is_set_is_a_temporary_error(fake_platform, logs):
    body = {
        "ok": False,
        "error_code": 409,
        "description": "Conflict: can't use getUpdates method while webhook is active",
    }
    fake_platform.route("POST", f"{BOT}/getUpdates", Answer(status=409, body=body))
    with pytest.raises(TransportError) as caught:
        PLATFORM.poll(secrets=SECRETS, offset=0, timeout=0)
    assert not caught.value.permanent
    assert "webhook is active" in caught.value.message


def test_acknowledge_answers_the_button_press(fake_platform, logs):
    fake_platform.route("POST", f"{BOT}/answerCallbackQuery", {"ok": True, "result": True})
    [press] = PLATFORM.parse(_raw(fixture("telegram_update_callback_query.json")), config={})
    expected = fixture("telegram_answer_callback_query_request.json")
    assert PLATFORM.acknowledge(press, secrets=SECRETS, text=expected["text"]) is True
    assert fake_platform.calls(f"{BOT}/answerCallbackQuery")[0].json() == expected


def test_acknowledge_ignores_plain_messages_and_tolerates_failure(fake_platform, logs):
    [text] = PLATFORM.parse(_raw(fixture("telegram_update_text.json")), config={})
    assert PLATFORM.acknowledge(text, secrets=SECRETS) is False
    assert fake_platform.requests == []
    body = {"ok": False, "error_code": 400, "description": "Bad Request: query is too old"}
    fake_platform.route("POST", f"{BOT}/answerCallbackQuery", Answer(status=400, body=body))
    [press] = PLATFORM.parse(_raw(fixture("telegram_update_callback_query.json")), config={})
    assert PLATFORM.acknowledge(press, secrets=SECRETS) is False
    assert fake_platform.calls(f"{BOT}/answerCallbackQuery")[0].json() == {
        "callback_query_id": "4776143213165740101"
    }


def test_profile_returns_the_identity_unchanged(fake_platform):
    identity = ClientIdentity(external_id="1", name="")
    assert PLATFORM.profile(identity, secrets=SECRETS, config={}) is identity
    assert fake_platform.requests == []


def _raw(body):
    import json

    from openline.connectors.base import RawRequest

    return RawRequest(method="POST", headers={}, query={}, body=json.dumps(body).encode())
