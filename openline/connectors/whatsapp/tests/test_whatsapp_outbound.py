"""WhatsApp sending and connecting over real HTTP against the fake Graph server."""

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
from openline.connectors.telegram.tests.hangup import hang_up_server
from openline.connectors.whatsapp import PLATFORM
from openline.testing.fake_platforms import Answer, fixture

CONFIG = {"phone_number_id": "200000000000002"}
SECRETS = {
    "access_token": "EAAfakeAccessToken000000000001",
    "app_secret": "fake0app0secret0123456789abcdef0",
    "verify_token": "cc-wa-verify-token",
}
MESSAGES = r"/v21\.0/200000000000002/messages"
WAMID = fixture("whatsapp_send_text_response.json")["messages"][0]["id"]


@pytest.fixture
def graph(fake_platform):
    fake_platform.route("POST", MESSAGES, fixture("whatsapp_send_text_response.json"))
    return fake_platform


def assert_no_secret(text: str) -> None:
    for value in SECRETS.values():
        assert value not in text


def test_send_text_matches_the_fixture(graph):
    expected = fixture("whatsapp_send_text_request.json")
    wamid = PLATFORM.send(
        Outgoing(recipient="15550002222", text=expected["text"]["body"]),
        secrets=SECRETS,
        config=CONFIG,
    )
    assert wamid == WAMID
    [call] = graph.calls(MESSAGES)
    assert call.json() == expected
    assert call.headers["authorization"] == f"Bearer {SECRETS['access_token']}"
    assert call.headers["content-type"] == "application/json"
    assert SECRETS["access_token"] not in call.path and not call.query


def test_send_text_without_a_link_has_no_preview(graph):
    PLATFORM.send(Outgoing(recipient="15550002222", text="Hello"), secrets=SECRETS, config=CONFIG)
    [call] = graph.calls(MESSAGES)
    assert call.json()["text"] == {"preview_url": False, "body": "Hello"}


def test_send_buttons_matches_the_fixture(graph):
    expected = fixture("whatsapp_send_interactive_buttons_request.json")
    buttons = tuple(
        Button(id=b["reply"]["id"], title=b["reply"]["title"])
        for b in expected["interactive"]["action"]["buttons"]
    )
    wamid = PLATFORM.send(
        Outgoing(
            recipient="15550002222", text=expected["interactive"]["body"]["text"], buttons=buttons
        ),
        secrets=SECRETS,
        config=CONFIG,
    )
    assert wamid == WAMID
    [call] = graph.calls(MESSAGES)
    assert call.json() == expected


def test_button_titles_are_cut_to_twenty_characters(graph):
    PLATFORM.send(
        Outgoing(
            recipient="15550002222",
            text="Consent?",
            buttons=(Button("consent:accept", "Ich stimme der Verarbeitung zu"),),
        ),
        secrets=SECRETS,
        config=CONFIG,
    )
    [call] = graph.calls(MESSAGES)
    title = call.json()["interactive"]["action"]["buttons"][0]["reply"]["title"]
    assert len(title) == 20 and title.endswith("\u2026")


def test_more_than_three_buttons_is_refused(graph):
    buttons = tuple(Button(f"b{i}", f"B{i}") for i in range(4))
    with pytest.raises(TransportError) as refused:
        PLATFORM.send(
            Outgoing(recipient="15550002222", text="?", buttons=buttons),
            secrets=SECRETS,
            config=CONFIG,
        )
    assert refused.value.permanent
    assert graph.calls(MESSAGES) == []


def test_long_text_with_buttons_sends_the_head_first(graph):
    text = ("word " * 400).strip() + " Do you agree?"
    wamid = PLATFORM.send(
        Outgoing(recipient="15550002222", text=text, buttons=(Button("consent:accept", "Yes"),)),
        secrets=SECRETS,
        config=CONFIG,
    )
    assert wamid == WAMID
    head, tail = graph.calls(MESSAGES)
    assert head.json()["type"] == "text"
    body = tail.json()["interactive"]["body"]["text"]
    assert len(body) <= 1024 and body.endswith("Do you agree?")
    assert f"{head.json()['text']['body']} {body}" == text


@pytest.mark.parametrize(
    ("name", "status", "permanent", "retry_after", "message"),
    [
        ("whatsapp_send_error_130429_rate_limit.json", 429, False, 30.0, "130429"),
        ("whatsapp_send_error_131047.json", 400, True, None, meta.WINDOW_CLOSED),
        ("messenger_send_error.json", 401, True, None, meta.INVALID_TOKEN),
    ],
)
def test_graph_errors_are_mapped(
    fake_platform, caplog, name, status, permanent, retry_after, message
):
    fake_platform.route("POST", MESSAGES, Answer(status=status, body=fixture(name)))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransportError) as failed:
        PLATFORM.send(Outgoing(recipient="15550002222", text="Hi"), secrets=SECRETS, config=CONFIG)
    assert failed.value.permanent is permanent
    assert failed.value.retry_after == retry_after
    assert message in failed.value.message
    assert_no_secret(str(failed.value))
    assert_no_secret(caplog.text)


@pytest.mark.parametrize("code", [131056, 80007, 4, 613])
def test_other_rate_limits_are_temporary(fake_platform, code):
    body = {"error": {"message": f"(#{code}) Rate limit", "code": code, "type": "OAuthException"}}
    fake_platform.route("POST", MESSAGES, Answer(status=400, body=body))
    with pytest.raises(TransportError) as failed:
        PLATFORM.send(Outgoing(recipient="15550002222", text="Hi"), secrets=SECRETS, config=CONFIG)
    assert not failed.value.permanent
    assert failed.value.retry_after == meta.RATE_LIMIT_RETRY_AFTER


def test_retry_after_header_is_honoured(fake_platform):
    fake_platform.route(
        "POST",
        MESSAGES,
        Answer(429, fixture("whatsapp_send_error_130429_rate_limit.json"), {"Retry-After": "7"}),
    )
    with pytest.raises(TransportError) as failed:
        PLATFORM.send(Outgoing(recipient="15550002222", text="Hi"), secrets=SECRETS, config=CONFIG)
    assert failed.value.retry_after == 7.0


def test_an_error_echoing_the_token_is_scrubbed(fake_platform):
    body = {"error": {"message": f"Bad token {SECRETS['access_token']}", "code": 100}}
    fake_platform.route("POST", MESSAGES, Answer(status=400, body=body))
    with pytest.raises(TransportError) as failed:
        PLATFORM.send(Outgoing(recipient="15550002222", text="Hi"), secrets=SECRETS, config=CONFIG)
    assert failed.value.permanent
    assert_no_secret(str(failed.value))


@pytest.mark.parametrize(
    "answer", [Answer(status=500, body={"error": {"message": "oops", "code": 2}}), Answer(503, "")]
)
def test_server_errors_are_temporary(fake_platform, answer):
    fake_platform.route("POST", MESSAGES, answer)
    with pytest.raises(TransportError) as failed:
        PLATFORM.send(Outgoing(recipient="15550002222", text="Hi"), secrets=SECRETS, config=CONFIG)
    assert not failed.value.permanent


def test_a_send_timeout_is_uncertain_and_permanent(fake_platform, settings):
    # WhatsApp may have accepted the message: retrying could deliver it twice.
    settings.OPENLINE_MESSENGER_TIMEOUT = 0.2
    fake_platform.route(
        "POST", MESSAGES, Answer(body=fixture("whatsapp_send_text_response.json"), delay=1.0)
    )
    with pytest.raises(TransportError) as failed:
        PLATFORM.send(Outgoing(recipient="15550002222", text="Hi"), secrets=SECRETS, config=CONFIG)
    assert (failed.value.permanent, failed.value.message) == (True, DELIVERY_UNCERTAIN)
    assert len(fake_platform.calls(MESSAGES)) == 1
    assert_no_secret(str(failed.value))


def test_a_broken_connection_after_the_send_was_written_is_uncertain(settings):
    with hang_up_server() as base:
        settings.OPENLINE_GRAPH_API_URL = base + "/v21.0"
        with pytest.raises(TransportError) as failed:
            PLATFORM.send(
                Outgoing(recipient="15550002222", text="Hi"), secrets=SECRETS, config=CONFIG
            )
    assert (failed.value.permanent, failed.value.message) == (True, DELIVERY_UNCERTAIN)


def test_a_timeout_outside_sending_stays_temporary(fake_platform, settings):
    settings.OPENLINE_MESSENGER_TIMEOUT = 0.2
    fake_platform.route(
        "GET", r"/v21\.0/200000000000002", Answer(body={"verified_name": "x"}, delay=1.0)
    )
    with pytest.raises(TransportError) as failed:
        PLATFORM.connect(secrets=SECRETS, config=CONFIG, webhook_url="https://x.example/h/")
    assert not failed.value.permanent
    assert "in time" in failed.value.message


def test_a_versioned_consent_button_id_is_sent_unchanged(graph):
    buttons = (Button("consent:accept:42", "I accept"), Button("consent:decline:42", "No"))
    PLATFORM.send(
        Outgoing(recipient="15550002222", text="Consent?", buttons=buttons),
        secrets=SECRETS,
        config=CONFIG,
    )
    [call] = graph.calls(MESSAGES)
    ids = [b["reply"]["id"] for b in call.json()["interactive"]["action"]["buttons"]]
    assert ids == ["consent:accept:42", "consent:decline:42"]


def test_unreachable_graph_is_temporary(settings):
    settings.OPENLINE_GRAPH_API_URL = "http://127.0.0.1:9/v21.0"
    with pytest.raises(TransportError) as failed:
        PLATFORM.send(Outgoing(recipient="15550002222", text="Hi"), secrets=SECRETS, config=CONFIG)
    assert not failed.value.permanent
    assert_no_secret(str(failed.value))


def test_answer_without_an_id_is_not_retried(fake_platform):
    fake_platform.route("POST", MESSAGES, {"messaging_product": "whatsapp", "messages": []})
    with pytest.raises(TransportError) as failed:
        PLATFORM.send(Outgoing(recipient="15550002222", text="Hi"), secrets=SECRETS, config=CONFIG)
    assert failed.value.permanent


def test_missing_configuration_is_permanent(fake_platform):
    with pytest.raises(TransportError) as no_number:
        PLATFORM.send(Outgoing(recipient="1", text="Hi"), secrets=SECRETS, config={})
    with pytest.raises(TransportError) as no_token:
        PLATFORM.send(Outgoing(recipient="1", text="Hi"), secrets={}, config=CONFIG)
    assert no_number.value.permanent and no_token.value.permanent
    assert fake_platform.requests == []


def test_connect_reads_the_phone_number(fake_platform):
    number_path = r"/v21\.0/200000000000002"
    fake_platform.route(
        "GET",
        number_path,
        {
            "display_phone_number": "+1 555-000-1111",
            "verified_name": "Openline Demo",
            "id": "200000000000002",
        },
    )
    result = PLATFORM.connect(
        secrets=SECRETS, config=CONFIG, webhook_url="https://cc.example.com/hooks/whatsapp/t/"
    )
    assert result.confirmed is False
    assert result.detail == "Openline Demo (+1 555-000-1111)"
    assert result.config == {
        "display_phone_number": "+1 555-000-1111",
        "verified_name": "Openline Demo",
    }
    [call] = fake_platform.calls(number_path, method="GET")
    assert call.query == {"fields": "display_phone_number,verified_name"}
    assert call.headers["authorization"] == f"Bearer {SECRETS['access_token']}"


def test_connect_with_an_invalid_token_fails(fake_platform, caplog):
    fake_platform.route(
        "GET", r"/v21\.0/200000000000002", Answer(401, fixture("messenger_send_error.json"))
    )
    with pytest.raises(TransportError) as failed:
        PLATFORM.connect(secrets=SECRETS, config=CONFIG, webhook_url="https://x/")
    assert failed.value.permanent
    assert failed.value.message == meta.INVALID_TOKEN
    assert_no_secret(caplog.text)


def test_disconnect_and_profile_call_nothing(fake_platform):
    PLATFORM.disconnect(secrets=SECRETS, config=CONFIG)
    client = ClientIdentity(external_id="15550002222", name="Test Customer", phone="15550002222")
    assert PLATFORM.profile(client, secrets=SECRETS, config=CONFIG) == client
    assert fake_platform.requests == []


def test_a_token_that_cannot_be_a_header_is_refused_without_echo(fake_platform):
    secrets = {**SECRETS, "access_token": "EAA\u00e9token\nX-Injected: 1"}
    with pytest.raises(TransportError) as failed:
        PLATFORM.send(Outgoing(recipient="15550002222", text="Hi"), secrets=secrets, config=CONFIG)
    assert failed.value.permanent
    assert "token" in failed.value.message and "EAA" not in failed.value.message
    assert fake_platform.requests == []
