"""Messenger sending, connecting and profiles over real HTTP against the fake Graph server."""

from __future__ import annotations

import logging

import pytest

from openline.connectors import meta
from openline.connectors.base import (
    DELIVERY_UNCERTAIN,
    Button,
    ClientIdentity,
    Outgoing,
    TransportError,
)
from openline.connectors.facebook import PLATFORM
from openline.connectors.telegram.tests.hangup import hang_up_server
from openline.testing.fake_platforms import Answer, fixture

PAGE = "100200300400500"
PSID = "2468013579246801"
CONFIG = {"page_id": PAGE}
SECRETS = {
    "page_access_token": "EAAfakePageToken00000000000001",
    "app_secret": "fake0app0secret0123456789abcdef0",
    "verify_token": "cc-fb-verify-token",
}
MESSAGES = rf"/v21\.0/{PAGE}/messages"
SUBSCRIBED = rf"/v21\.0/{PAGE}/subscribed_apps"


@pytest.fixture
def graph(fake_platform):
    fake_platform.route("POST", MESSAGES, fixture("messenger_send_text_response.json"))
    return fake_platform


def assert_no_secret(text: str) -> None:
    for value in SECRETS.values():
        assert value not in text


def send(text: str = "Hi", buttons=()) -> str:
    return PLATFORM.send(
        Outgoing(recipient=PSID, text=text, buttons=buttons), secrets=SECRETS, config=CONFIG
    )


def test_send_text_matches_the_fixture(graph):
    expected = fixture("messenger_send_text_request.json")
    assert send(expected["message"]["text"]) == "m_FAKEmidOut0003"
    [call] = graph.calls(MESSAGES)
    assert call.json() == expected
    # The page token travels in the header, never in the URL (URLs end up in logs).
    assert call.headers["authorization"] == f"Bearer {SECRETS['page_access_token']}"
    assert call.query == {}


def test_send_quick_replies_matches_the_fixture(graph):
    expected = fixture("messenger_send_quick_replies_request.json")
    buttons = tuple(Button(q["payload"], q["title"]) for q in expected["message"]["quick_replies"])
    assert send(expected["message"]["text"], buttons) == "m_FAKEmidOut0003"
    [call] = graph.calls(MESSAGES)
    assert call.json() == expected


def test_quick_reply_limits(graph):
    send("?", (Button("consent:accept", "J'accepte le traitement des donnees"),))
    [call] = graph.calls(MESSAGES)
    assert len(call.json()["message"]["quick_replies"][0]["title"]) == 20
    with pytest.raises(TransportError) as too_many:
        send("?", tuple(Button(f"b{i}", "B") for i in range(14)))
    assert too_many.value.permanent
    assert len(graph.calls(MESSAGES)) == 1


@pytest.mark.parametrize(
    ("body", "status", "permanent", "retry_after", "message"),
    [
        (fixture("messenger_send_error.json"), 400, True, None, meta.INVALID_TOKEN),
        (
            {
                "error": {
                    "message": "(#10) This message is sent outside of allowed window.",
                    "type": "OAuthException",
                    "code": 10,
                    "error_subcode": 2018278,
                }
            },
            400,
            True,
            None,
            meta.WINDOW_CLOSED,
        ),
        (
            {
                "error": {
                    "message": "(#10) This message is sent outside of allowed window. "
                    "You need News Messaging permission.",
                    "code": 10,
                    "error_subcode": 2018065,
                }
            },
            400,
            True,
            None,
            meta.WINDOW_CLOSED,
        ),
        (
            {"error": {"message": "(#10) Permission denied", "code": 10}},
            403,
            True,
            None,
            "Permission denied",
        ),
        (
            {"error": {"message": "Temporary send message failure.", "code": 1200}},
            400,
            False,
            None,
            "Temporary",
        ),
        (
            {
                "error": {
                    "message": "(#613) Calls to this api have exceeded the rate limit.",
                    "code": 613,
                }
            },
            400,
            False,
            meta.RATE_LIMIT_RETRY_AFTER,
            "613",
        ),
        (
            {"error": {"message": "(#32) Page request limit reached", "code": 32}},
            400,
            False,
            meta.RATE_LIMIT_RETRY_AFTER,
            "32",
        ),
        (
            {"error": {"message": "(#551) This person isn't available right now.", "code": 551}},
            400,
            True,
            None,
            "available",
        ),
        (
            {
                "error": {
                    "message": "An unexpected error has occurred.",
                    "code": 2,
                    "is_transient": True,
                }
            },
            500,
            False,
            None,
            "unexpected",
        ),
    ],
)
def test_graph_errors_are_mapped(
    fake_platform, caplog, body, status, permanent, retry_after, message
):
    fake_platform.route("POST", MESSAGES, Answer(status=status, body=body))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransportError) as failed:
        send()
    assert failed.value.permanent is permanent
    assert failed.value.retry_after == retry_after
    assert message in failed.value.message
    assert_no_secret(str(failed.value))
    assert_no_secret(caplog.text)


def test_a_send_timeout_is_uncertain_and_permanent(fake_platform, settings):
    # Messenger may have accepted the message: retrying could deliver it twice.
    settings.OPENLINE_MESSENGER_TIMEOUT = 0.2
    fake_platform.route("POST", MESSAGES, Answer(body={"message_id": "m"}, delay=1.0))
    with pytest.raises(TransportError) as failed:
        send()
    assert (failed.value.permanent, failed.value.message) == (True, DELIVERY_UNCERTAIN)
    assert len(fake_platform.calls(MESSAGES)) == 1


def test_a_broken_connection_after_the_send_was_written_is_uncertain(settings):
    with hang_up_server() as base:
        settings.OPENLINE_GRAPH_API_URL = base + "/v21.0"
        with pytest.raises(TransportError) as failed:
            send()
    assert (failed.value.permanent, failed.value.message) == (True, DELIVERY_UNCERTAIN)


def test_an_unreachable_graph_stays_temporary(settings):
    settings.OPENLINE_GRAPH_API_URL = "http://127.0.0.1:9/v21.0"
    with pytest.raises(TransportError) as failed:
        send()
    assert not failed.value.permanent


def test_a_timeout_outside_sending_stays_temporary(fake_platform, settings):
    settings.OPENLINE_MESSENGER_TIMEOUT = 0.2
    fake_platform.route("GET", rf"/v21\.0/{PAGE}", Answer(body={"id": PAGE}, delay=1.0))
    with pytest.raises(TransportError) as failed:
        PLATFORM.connect(secrets=SECRETS, config=CONFIG, webhook_url="https://x.example/h/")
    assert not failed.value.permanent


def test_a_versioned_consent_payload_is_sent_unchanged(graph):
    send("Consent?", (Button("consent:accept:42", "I accept"), Button("consent:decline:42", "No")))
    [call] = graph.calls(MESSAGES)
    payloads = [reply["payload"] for reply in call.json()["message"]["quick_replies"]]
    assert payloads == ["consent:accept:42", "consent:decline:42"]


def test_connect_reads_the_page_and_subscribes(fake_platform):
    fake_platform.route("GET", rf"/v21\.0/{PAGE}", {"id": PAGE, "name": "Openline Demo Page"})
    fake_platform.route("POST", SUBSCRIBED, {"success": True})
    result = PLATFORM.connect(
        secrets=SECRETS, config=CONFIG, webhook_url="https://cc.example.com/hooks/facebook/t/"
    )
    assert result.confirmed is False
    assert result.detail == "Openline Demo Page"
    [read] = fake_platform.calls(rf"/v21\.0/{PAGE}", method="GET")
    assert read.query == {"fields": "id,name"}
    [subscribe] = fake_platform.calls(SUBSCRIBED)
    assert subscribe.query == {
        "subscribed_fields": "messages,messaging_postbacks,message_deliveries,message_reads"
    }
    assert subscribe.headers["authorization"] == f"Bearer {SECRETS['page_access_token']}"


def test_connect_with_an_invalid_token_fails(fake_platform, caplog):
    fake_platform.route(
        "GET", rf"/v21\.0/{PAGE}", Answer(400, fixture("messenger_send_error.json"))
    )
    with pytest.raises(TransportError) as failed:
        PLATFORM.connect(secrets=SECRETS, config=CONFIG, webhook_url="https://x/")
    assert failed.value.permanent
    assert fake_platform.calls(SUBSCRIBED) == []
    assert_no_secret(str(failed.value) + caplog.text)


def test_connect_fails_when_the_subscription_is_refused(fake_platform):
    fake_platform.route("GET", rf"/v21\.0/{PAGE}", {"id": PAGE, "name": "Page"})
    fake_platform.route("POST", SUBSCRIBED, {"success": False})
    with pytest.raises(TransportError):
        PLATFORM.connect(secrets=SECRETS, config=CONFIG, webhook_url="https://x/")


def test_disconnect_unsubscribes_and_never_raises(fake_platform, caplog):
    fake_platform.route("DELETE", SUBSCRIBED, {"success": True})
    PLATFORM.disconnect(secrets=SECRETS, config=CONFIG)
    assert len(fake_platform.calls(SUBSCRIBED, method="DELETE")) == 1
    fake_platform.route("DELETE", SUBSCRIBED, Answer(400, fixture("messenger_send_error.json")))
    PLATFORM.disconnect(secrets=SECRETS, config=CONFIG)
    assert "unsubscribe" in caplog.text
    assert_no_secret(caplog.text)


def test_profile_fills_name_and_language(fake_platform):
    fake_platform.route("GET", rf"/v21\.0/{PSID}", fixture("messenger_user_profile_response.json"))
    filled = PLATFORM.profile(ClientIdentity(external_id=PSID), secrets=SECRETS, config=CONFIG)
    assert filled == ClientIdentity(external_id=PSID, name="Test Customer", language="en-GB")
    [call] = fake_platform.calls(rf"/v21\.0/{PSID}", method="GET")
    assert call.query == {"fields": "first_name,last_name,locale"}
    assert call.headers["authorization"] == f"Bearer {SECRETS['page_access_token']}"
    # Already known: no call.
    assert PLATFORM.profile(filled, secrets=SECRETS, config=CONFIG) == filled
    assert len(fake_platform.requests) == 1


def test_profile_failure_keeps_the_identity(fake_platform, caplog):
    fake_platform.route(
        "GET", rf"/v21\.0/{PSID}", Answer(400, fixture("messenger_send_error.json"))
    )
    client = ClientIdentity(external_id=PSID)
    assert PLATFORM.profile(client, secrets=SECRETS, config=CONFIG) == client
    assert_no_secret(caplog.text)
