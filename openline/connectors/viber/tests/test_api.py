"""Viber API calls against the loopback fake platform: exact request bodies, error mapping."""

from __future__ import annotations

import logging
import socket

import pytest

from openline.connectors.base import (
    DELIVERY_UNCERTAIN,
    Button,
    ClientIdentity,
    Outgoing,
    TransportError,
)
from openline.connectors.telegram.tests.hangup import hang_up_server
from openline.connectors.viber import PLATFORM
from openline.testing.fake_platforms import Answer, fixture

TOKEN = "4a1b2c3d4e5f6a7b-8c9d0e1f2a3b4c5d-6e7f8a9b0c1d2e3f"
SECRETS = {"auth_token": TOKEN}
USER = "FakeViberUser0001AbCd=="
CONFIG = {"sender_name": "CC Support", "sender_avatar": "https://cc.example.com/avatar.jpg"}
CONSENT_TEXT = (
    "Please confirm that you consent to processing of your personal data: "
    "https://cc.example.com/c/FakeConsentV1xYz"
)
CONSENT_BUTTONS = (Button("consent:accept", "I accept"), Button("consent:decline", "I decline"))


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield caplog
    assert TOKEN not in caplog.text


def test_send_text(fake_platform, logs):
    fake_platform.route("POST", "/pa/send_message", fixture("viber_send_message_response.json"))
    expected = fixture("viber_send_message_request.json")
    outgoing = Outgoing(recipient=USER, text=expected["text"])
    assert PLATFORM.send(outgoing, secrets=SECRETS, config=CONFIG) == "5900000000000000010"
    [call] = fake_platform.calls("/pa/send_message")
    assert call.headers["x-viber-auth-token"] == TOKEN
    # Openline sends no tracking data with plain text (the fixture's is the sample's own).
    del expected["tracking_data"]
    assert call.json() == expected


def test_send_with_buttons_is_a_keyboard_of_reply_buttons(fake_platform, logs):
    fake_platform.route("POST", "/pa/send_message", fixture("viber_send_message_response.json"))
    outgoing = Outgoing(recipient=USER, text=CONSENT_TEXT, buttons=CONSENT_BUTTONS)
    assert PLATFORM.send(outgoing, secrets=SECRETS, config=CONFIG) == "5900000000000000010"
    body = fake_platform.calls("/pa/send_message")[0].json()
    expected = fixture("viber_send_message_keyboard_request.json")
    # Openline's tracking data lists the buttons it offered, so the reply can be recognised.
    assert body.pop("tracking_data") == (
        'openline:buttons:{"consent:accept": "I accept", "consent:decline": "I decline"}'
    )
    del expected["tracking_data"]
    assert body == expected


def test_the_sender_is_the_account_name_or_openline(fake_platform):
    fake_platform.route("POST", "/pa/send_message", fixture("viber_send_message_response.json"))
    outgoing = Outgoing(recipient=USER, text="Hi")
    PLATFORM.send(outgoing, secrets=SECRETS, config={"account_name": "A" * 40})
    PLATFORM.send(outgoing, secrets=SECRETS, config={})
    first, second = (r.json()["sender"] for r in fake_platform.calls("/pa/send_message"))
    assert first == {"name": "A" * 28}  # Viber's limit
    assert second == {"name": "Openline"}


@pytest.mark.parametrize(
    ("name", "permanent", "retry_after", "words"),
    [
        ("viber_send_error_not_subscribed.json", True, None, "not subscribed"),
        ("viber_send_error_too_many_requests.json", False, 300.0, "Too many requests"),
    ],
)
def test_send_errors_are_mapped(fake_platform, logs, name, permanent, retry_after, words):
    # Viber answers errors with HTTP 200: the body's status decides.
    fake_platform.route("POST", "/pa/send_message", fixture(name))
    with pytest.raises(TransportError) as caught:
        PLATFORM.send(Outgoing(recipient=USER, text="Hi"), secrets=SECRETS, config={})
    assert caught.value.permanent is permanent
    assert caught.value.retry_after == retry_after
    assert words in str(caught.value)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "permanent", "retry_after"),
    [
        (Answer(body={"status": 2, "status_message": "invalidAuthToken"}), True, None),
        (Answer(body={"status": 99, "status_message": "General error"}), False, None),
        (Answer(status=503, body="unavailable"), False, None),
        (Answer(status=429, body="slow down", headers={"Retry-After": "9"}), False, 9.0),
        (Answer(status=200, body="<html>not json</html>"), False, None),
        (Answer(body={"status": 0, "status_message": "ok"}), False, None),  # no token
    ],
)
def test_other_answers_are_mapped(fake_platform, logs, answer, permanent, retry_after):
    fake_platform.route("POST", "/pa/send_message", answer)
    with pytest.raises(TransportError) as caught:
        PLATFORM.send(Outgoing(recipient=USER, text="Hi"), secrets=SECRETS, config={})
    assert (caught.value.permanent, caught.value.retry_after) == (permanent, retry_after)


def test_a_send_timeout_is_uncertain_an_unreachable_api_temporary(fake_platform, settings, logs):
    # Viber may have delivered the message it never answered for: no automatic resend.
    settings.OPENLINE_MESSENGER_TIMEOUT = 0.3
    fake_platform.route("POST", "/pa/send_message", Answer(body={"status": 0}, delay=1.0))
    with pytest.raises(TransportError) as caught:
        PLATFORM.send(Outgoing(recipient=USER, text="Hi"), secrets=SECRETS, config={})
    assert (caught.value.permanent, caught.value.message) == (True, DELIVERY_UNCERTAIN)
    assert len(fake_platform.calls("/pa/send_message")) == 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.OPENLINE_VIBER_API_URL = f"http://127.0.0.1:{port}"
    with pytest.raises(TransportError) as caught:
        PLATFORM.send(Outgoing(recipient=USER, text="Hi"), secrets=SECRETS, config={})
    assert not caught.value.permanent
    assert TOKEN not in str(caught.value)


def test_a_broken_connection_after_the_send_was_written_is_uncertain(settings, logs):
    with hang_up_server() as base:
        settings.OPENLINE_VIBER_API_URL = base
        with pytest.raises(TransportError) as caught:
            PLATFORM.send(Outgoing(recipient=USER, text="Hi"), secrets=SECRETS, config={})
    assert (caught.value.permanent, caught.value.message) == (True, DELIVERY_UNCERTAIN)


def test_a_timeout_outside_sending_stays_temporary(fake_platform, settings, logs):
    settings.OPENLINE_MESSENGER_TIMEOUT = 0.3
    fake_platform.route("POST", "/pa/set_webhook", Answer(body={"status": 0}, delay=1.0))
    with pytest.raises(TransportError) as caught:
        PLATFORM.connect(secrets=SECRETS, config={}, webhook_url="https://x.example/h/")
    assert not caught.value.permanent


def test_a_versioned_consent_button_id_is_sent_unchanged(fake_platform, logs):
    fake_platform.route("POST", "/pa/send_message", fixture("viber_send_message_response.json"))
    buttons = (Button("consent:accept:42", "I accept"), Button("consent:decline:42", "No"))
    PLATFORM.send(Outgoing(recipient=USER, text="?", buttons=buttons), secrets=SECRETS, config={})
    body = fake_platform.calls("/pa/send_message")[0].json()
    bodies = [button["ActionBody"] for button in body["keyboard"]["Buttons"]]
    assert bodies == ["consent:accept:42", "consent:decline:42"]
    assert '"consent:accept:42": "I accept"' in body["tracking_data"]


def test_connect_sets_the_webhook_and_reads_the_account_name(fake_platform, logs):
    fake_platform.route("POST", "/pa/set_webhook", fixture("viber_set_webhook_response.json"))
    account = {"status": 0, "status_message": "ok", "id": "pa:5000", "name": "CC Support",
               "uri": "ccsupport", "icon": "https://x/i.jpg"}  # fmt: skip
    fake_platform.route("POST", "/pa/get_account_info", account)
    expected = fixture("viber_set_webhook_request.json")
    result = PLATFORM.connect(secrets=SECRETS, config={}, webhook_url=expected["url"])
    assert result.confirmed
    assert result.detail == "CC Support"
    assert result.config == {
        "account_id": "pa:5000",
        "account_name": "CC Support",
        "uri": "ccsupport",
    }
    [call] = fake_platform.calls("/pa/set_webhook")
    assert call.json() == expected
    assert call.headers["x-viber-auth-token"] == TOKEN
    assert fake_platform.calls("/pa/get_account_info")[0].json() == {}


def test_connect_is_confirmed_even_when_the_name_cannot_be_read(fake_platform, logs):
    fake_platform.route("POST", "/pa/set_webhook", fixture("viber_set_webhook_response.json"))
    fake_platform.route("POST", "/pa/get_account_info", Answer(status=500, body="oops"))
    result = PLATFORM.connect(secrets=SECRETS, config={}, webhook_url="https://cc.example.com/h")
    assert (result.confirmed, result.detail, result.config) == (True, "Viber bot", {})


@pytest.mark.parametrize(("status", "message"), [(1, "invalidUrl"), (2, "invalidAuthToken")])
def test_connect_refused_is_permanent_with_the_status_message(fake_platform, logs, status, message):
    fake_platform.route("POST", "/pa/set_webhook", {"status": status, "status_message": message})
    with pytest.raises(TransportError) as caught:
        PLATFORM.connect(secrets=SECRETS, config={}, webhook_url="https://cc.example.com/h")
    assert caught.value.permanent
    assert message in caught.value.message
    assert fake_platform.calls("/pa/get_account_info") == []


def test_connect_needs_a_webhook_url_and_a_token(fake_platform):
    for secrets, url in ((SECRETS, ""), ({}, "https://cc.example.com/h")):
        with pytest.raises(TransportError) as caught:
            PLATFORM.connect(secrets=secrets, config={}, webhook_url=url)
        assert caught.value.permanent
    assert fake_platform.requests == []


def test_disconnect_clears_the_webhook_and_tolerates_failure(fake_platform, logs):
    fake_platform.queue("POST", "/pa/set_webhook", Answer(status=502, body="down"))
    PLATFORM.disconnect(secrets=SECRETS, config={})
    fake_platform.route("POST", "/pa/set_webhook", {"status": 0, "status_message": "ok"})
    PLATFORM.disconnect(secrets=SECRETS, config={})
    assert [r.json() for r in fake_platform.calls("/pa/set_webhook")] == [{"url": ""}, {"url": ""}]


def test_profile_asks_for_user_details_only_when_the_name_is_missing(fake_platform, logs):
    fake_platform.route(
        "POST", "/pa/get_user_details", fixture("viber_get_user_details_response.json")
    )
    named = ClientIdentity(external_id=USER, name="Known")
    assert PLATFORM.profile(named, secrets=SECRETS, config={}) is named
    assert fake_platform.requests == []
    filled = PLATFORM.profile(ClientIdentity(external_id=USER), secrets=SECRETS, config={})
    assert filled == ClientIdentity(external_id=USER, name="Test Customer", language="en")
    assert fake_platform.calls("/pa/get_user_details")[0].json() == fixture(
        "viber_get_user_details_request.json"
    )


def test_profile_failure_keeps_the_identity(fake_platform, logs):
    fake_platform.route(
        "POST", "/pa/get_user_details", {"status": 12, "status_message": "Too many requests"}
    )
    identity = ClientIdentity(external_id=USER, language="de")
    assert PLATFORM.profile(identity, secrets=SECRETS, config={}) == identity
