"""WhatsApp webhooks: every fixture parsed, signatures over raw bytes, the GET handshake."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.connectors import meta
from openline.connectors.base import (
    ClientIdentity,
    InboundMessage,
    RawRequest,
    StatusEvent,
    VerificationError,
    event_from_json,
    event_to_json,
)
from openline.connectors.whatsapp import PLATFORM
from openline.testing.fake_platforms import fixture

CONFIG = {"phone_number_id": "200000000000002"}
SECRETS = {
    "access_token": "EAAfakeAccessToken000000000001",
    "app_secret": "fake0app0secret0123456789abcdef0",
    "verify_token": "cc-wa-verify-token",
}


def post(body: bytes, headers: dict[str, str] | None = None) -> RawRequest:
    return RawRequest(method="POST", headers=headers or {}, query={}, body=body)


def parse_fixture(name: str, config: dict | None = None):
    body = json.dumps(fixture(name)).encode()
    return PLATFORM.parse(post(body), config=CONFIG if config is None else config)


def test_platform_describes_itself():
    assert PLATFORM.kind == "whatsapp"
    assert PLATFORM.text_limit == 4096
    assert PLATFORM.secret_fields == ("access_token", "app_secret", "verify_token")
    assert PLATFORM.config_fields == ("phone_number_id",)


def test_text_message():
    [event] = parse_fixture("whatsapp_text_message.json")
    assert event == InboundMessage(
        key="wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRGQUtFMDAwMDAwMDAwMDAwMDAwMQA=",
        client=ClientIdentity(external_id="15550002222", name="Test Customer", phone="15550002222"),
        text="Hi, where is my order A-1001?",
        sent_at=datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        platform_message_id="wamid.HBgLMTU1NTAwMDIyMjIVAgASGBRGQUtFMDAwMDAwMDAwMDAwMDAwMQA=",
    )
    # The durable intake stores events as JSON: the round trip keeps everything.
    assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event


def test_batch_of_two_messages_gives_two_events():
    events = parse_fixture("whatsapp_text_message_batch_two.json")
    assert [e.text for e in events] == ["Hello?", "Anyone there?"]
    assert len({e.key for e in events}) == 2
    assert all(isinstance(e, InboundMessage) for e in events)
    assert all(e.client.name == "Test Customer" for e in events)


def test_button_reply_carries_the_payload_and_title():
    [event] = parse_fixture("whatsapp_interactive_button_reply.json")
    assert isinstance(event, InboundMessage)
    assert event.button == "consent:accept"
    assert event.text == "I accept"
    assert event.client.external_id == "15550002222"


@pytest.mark.parametrize(
    ("name", "state", "error"),
    [
        ("whatsapp_status_sent.json", "sent", ""),
        ("whatsapp_status_delivered.json", "delivered", ""),
        ("whatsapp_status_read.json", "read", ""),
        ("whatsapp_status_failed.json", "failed", meta.WINDOW_CLOSED),
    ],
)
def test_statuses(name, state, error):
    [event] = parse_fixture(name)
    status = fixture(name)["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert event == StatusEvent(
        key=f"{status['id']}:{state}",
        platform_message_id=status["id"],
        state=state,
        client_external_id="15550002222",
        error=error,
        at=datetime.fromtimestamp(int(status["timestamp"]), tz=UTC),
    )


def test_failed_status_with_another_error_keeps_its_title():
    body = fixture("whatsapp_status_failed.json")
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0].update(
        code=131026, title="Message undeliverable"
    )
    [event] = PLATFORM.parse(post(json.dumps(body).encode()), config=CONFIG)
    assert event.error == "Message undeliverable"


def test_other_message_types_are_labelled():
    body = fixture("whatsapp_text_message.json")
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message.update(type="image", image={"id": "1", "mime_type": "image/jpeg", "caption": "box"})
    [event] = PLATFORM.parse(post(json.dumps(body).encode()), config=CONFIG)
    assert event.text == "[image] box"
    message.update(type="sticker", sticker={"id": "2"})
    del message["image"]
    [event] = PLATFORM.parse(post(json.dumps(body).encode()), config=CONFIG)
    assert event.text == "[sticker]"


def with_message(**fields) -> list:
    body = fixture("whatsapp_text_message.json")
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message.update(fields)
    events = PLATFORM.parse(post(json.dumps(body).encode()), config=CONFIG)
    for event in events:
        assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event
    return events


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "\U0001f44e"}},
         "[reaction] \U0001f44e"),
        ({"type": "system", "system": {"body": "Number changed", "type": "user_changed_number"}},
         "[system] Number changed"),
        ({"type": "unsupported", "errors": [{"code": 131051}]}, "[unsupported]"),
        ({"type": "edit", "edit": {"original_message_id": "wamid.X"}}, "[edit]"),
        ({"type": "edited"}, "[edited]"),
        ({"type": "deleted"}, "[deleted]"),
    ],
)  # fmt: skip
def test_reactions_system_notices_edits_and_deletions_are_not_content(fields, text):
    # A thumbs-down reaction to the consent warning is no "client wrote again".
    [event] = with_message(**fields)
    assert isinstance(event, InboundMessage)
    assert (event.text, event.content) == (text, False)


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "text", "text": {"body": "hi"}},
        {"type": "image", "image": {"id": "1"}},
        {"type": "interactive",
         "interactive": {"type": "button_reply",
                         "button_reply": {"id": "consent:accept:42", "title": "I accept"}}},
    ],
)  # fmt: skip
def test_messages_and_button_presses_are_content(fields):
    [event] = with_message(**fields)
    assert event.content is True


def test_a_versioned_consent_button_is_passed_through_unchanged():
    body = fixture("whatsapp_interactive_button_reply.json")
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["interactive"]["button_reply"]["id"] = "consent:decline:9223372036854775807"
    [event] = PLATFORM.parse(post(json.dumps(body).encode()), config=CONFIG)
    assert event.button == "consent:decline:9223372036854775807"


def test_events_for_another_phone_number_are_dropped():
    assert parse_fixture("whatsapp_text_message.json", {"phone_number_id": "999"}) == []
    assert parse_fixture("whatsapp_status_read.json", {"phone_number_id": "999"}) == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": '
        b'{"metadata": {"phone_number_id": "200000000000002"}, "messages": [{"id": 5}]}}]}]}',
    ],
)
def test_malformed_bodies_raise_value_error(body):
    with pytest.raises(ValueError):
        PLATFORM.parse(post(body), config=CONFIG)


@pytest.mark.parametrize(
    "name", ["whatsapp_signature_vector.json", "whatsapp_text_message_unicode_escapes.json"]
)
def test_signature_vectors(name):
    vector = fixture(name)
    raw = vector["raw_body"].encode()
    header = {vector["header_name"].lower(): vector["header_value"]}
    secrets = {**SECRETS, "app_secret": vector["app_secret"]}
    PLATFORM.verify(post(raw, header), secrets=secrets, config=CONFIG)
    # The signed body parses to the escaped characters, decoded.
    [event] = PLATFORM.parse(post(raw), config=CONFIG)
    assert "\\u" not in event.text and "\\u" not in event.client.name

    tampered = raw.replace(b"wamid", b"wamiD", 1)
    with pytest.raises(VerificationError) as refused:
        PLATFORM.verify(post(tampered, header), secrets=secrets, config=CONFIG)
    assert refused.value.status == 403

    # Parsed and dumped again (literal UTF-8, other spacing): other bytes, refused.
    for reserialised in (
        json.dumps(json.loads(raw), ensure_ascii=False).encode(),
        json.dumps(json.loads(raw)).encode(),
    ):
        assert reserialised != raw
        with pytest.raises(VerificationError):
            PLATFORM.verify(post(reserialised, header), secrets=secrets, config=CONFIG)


def test_unicode_escapes_decode_to_the_real_characters():
    vector = fixture("whatsapp_text_message_unicode_escapes.json")
    [event] = PLATFORM.parse(post(vector["raw_body"].encode()), config=CONFIG)
    assert event.client.name == "Zo\u00eb"
    assert "\U0001f60a" in event.text


def test_missing_and_malformed_signatures():
    vector = fixture("whatsapp_signature_vector.json")
    raw = vector["raw_body"].encode()
    with pytest.raises(VerificationError) as missing:
        PLATFORM.verify(post(raw), secrets=SECRETS, config=CONFIG)
    assert missing.value.status == 401
    digest = vector["header_value"].split("=", 1)[1]
    for header in (digest, f"sha1={digest}", "sha256=zz\u00e9", "sha256="):
        with pytest.raises(VerificationError) as wrong:
            PLATFORM.verify(
                post(raw, {"x-hub-signature-256": header}), secrets=SECRETS, config=CONFIG
            )
        assert wrong.value.status == 403
    with pytest.raises(VerificationError) as wrong_secret:
        PLATFORM.verify(
            post(raw, {"x-hub-signature-256": vector["header_value"]}),
            secrets={**SECRETS, "app_secret": "another-secret"},
            config=CONFIG,
        )
    assert wrong_secret.value.status == 403
    assert SECRETS["app_secret"] not in str(wrong_secret.value)


def test_handshake():
    request = fixture("whatsapp_verify_request.json")
    get = RawRequest(method="GET", headers={}, query=request["query"], body=b"")
    reply = PLATFORM.handshake(get, secrets=SECRETS, config=CONFIG)
    assert reply is not None
    assert (reply.status, reply.body) == (200, request["expected_response"]["body"])

    wrong = {**request["query"], "hub.verify_token": "guess"}
    reply = PLATFORM.handshake(
        RawRequest(method="GET", headers={}, query=wrong, body=b""), secrets=SECRETS, config=CONFIG
    )
    assert reply is not None and reply.status == 403
    assert SECRETS["verify_token"] not in reply.body

    # No verify token configured: nothing matches, not even an empty one.
    empty = {**request["query"], "hub.verify_token": ""}
    reply = PLATFORM.handshake(
        RawRequest(method="GET", headers={}, query=empty, body=b""),
        secrets={**SECRETS, "verify_token": ""},
        config=CONFIG,
    )
    assert reply is not None and reply.status == 403

    not_handshake = RawRequest(method="GET", headers={}, query={}, body=b"")
    assert PLATFORM.handshake(not_handshake, secrets=SECRETS, config=CONFIG) is None
    post_request = RawRequest(method="POST", headers={}, query={}, body=b"{}")
    assert PLATFORM.handshake(post_request, secrets=SECRETS, config=CONFIG) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "object",
                    "entry",
                    "changes",
                    "value",
                    "metadata",
                    "phone_number_id",
                    "messages",
                    "statuses",
                    "contacts",
                    "id",
                    "from",
                    "type",
                    "text",
                    "body",
                    "timestamp",
                    "status",
                    "interactive",
                    "button_reply",
                    "errors",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    value=json_values,
    whatsapp=st.booleans(),
    number=st.sampled_from(["200000000000002", "", 5]),
)
def test_parse_fuzz_gives_events_or_value_error(value, whatsapp, number):
    if whatsapp:
        value = {
            "object": "whatsapp_business_account",
            "entry": [
                {"changes": [{"value": {"metadata": {"phone_number_id": number}, "x": value}}]},
                value,
            ],
        }
    body = json.dumps(value).encode()
    try:
        events = PLATFORM.parse(post(body), config=CONFIG)
    except ValueError:
        return
    for event in events:
        assert isinstance(event, InboundMessage | StatusEvent)
        event_from_json(json.loads(json.dumps(event_to_json(event))))


@settings(max_examples=200, deadline=None)
@given(message=json_values, status=json_values)
def test_parse_fuzz_inside_a_valid_envelope(message, status):
    body = fixture("whatsapp_text_message.json")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"].append(message)
    value["statuses"] = [status]
    try:
        events = PLATFORM.parse(post(json.dumps(body).encode()), config=CONFIG)
    except ValueError:
        return
    assert events[0].key.startswith("wamid.")
