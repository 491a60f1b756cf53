"""Messenger webhooks: every fixture parsed, signatures over raw bytes, the GET handshake."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.connectors.base import (
    ClientIdentity,
    InboundMessage,
    RawRequest,
    StatusEvent,
    VerificationError,
    event_from_json,
    event_to_json,
)
from openline.connectors.facebook import PLATFORM
from openline.testing.fake_platforms import fixture

PAGE = "100200300400500"
PSID = "2468013579246801"
CONFIG = {"page_id": PAGE}
SECRETS = {
    "page_access_token": "EAAfakePageToken00000000000001",
    "app_secret": "fake0app0secret0123456789abcdef0",
    "verify_token": "cc-fb-verify-token",
}


def post(body: bytes, headers: dict[str, str] | None = None) -> RawRequest:
    return RawRequest(method="POST", headers=headers or {}, query={}, body=body)


def parse_body(body, config: dict | None = None):
    return PLATFORM.parse(
        post(json.dumps(body).encode()), config=CONFIG if config is None else config
    )


def page_event(**event) -> dict:
    return {
        "object": "page",
        "entry": [
            {
                "id": PAGE,
                "time": 1767225800123,
                "messaging": [
                    {
                        "sender": {"id": PSID},
                        "recipient": {"id": PAGE},
                        "timestamp": 1767225800000,
                        **event,
                    }
                ],
            }
        ],
    }


def test_platform_describes_itself():
    assert PLATFORM.kind == "facebook"
    assert PLATFORM.text_limit == 2000
    assert PLATFORM.secret_fields == ("page_access_token", "app_secret", "verify_token")
    assert PLATFORM.config_fields == ("page_id",)


def test_text_message():
    [event] = parse_body(fixture("messenger_text_message.json"))
    assert event == InboundMessage(
        key="m_FAKEmidAbCdEf0001xYz",
        client=ClientIdentity(external_id=PSID),
        text="Hello, I have a question about delivery",
        sent_at=datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        platform_message_id="m_FAKEmidAbCdEf0001xYz",
    )
    assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event


def test_quick_reply_carries_the_payload():
    [event] = parse_body(fixture("messenger_quick_reply_message.json"))
    assert isinstance(event, InboundMessage)
    assert (event.key, event.text, event.button) == (
        "m_FAKEmidQuickReply0004",
        "I accept",
        "consent:accept",
    )
    assert event.client.external_id == PSID


def test_a_versioned_consent_quick_reply_is_passed_through_unchanged():
    body = fixture("messenger_quick_reply_message.json")
    body["entry"][0]["messaging"][0]["message"]["quick_reply"]["payload"] = "consent:decline:42"
    [event] = parse_body(body)
    assert (event.button, event.content) == ("consent:decline:42", True)


def test_reactions_are_not_parsed_as_messages():
    reaction = {"reaction": "other", "emoji": "\U0001f44e", "action": "react", "mid": "m_1"}
    assert parse_body(page_event(reaction=reaction)) == []


def test_echo_is_ignored():
    assert parse_body(fixture("messenger_echo_message.json")) == []


def test_get_started_postback():
    [event] = parse_body(fixture("messenger_postback_get_started.json"))
    assert isinstance(event, InboundMessage)
    assert (event.text, event.button) == ("Get Started", "GET_STARTED")
    assert event.client.external_id == PSID
    assert event.key == f"postback:{PSID}:1767225590000"
    # The same tap delivered twice keeps its key (the intake deduplicates on it).
    assert parse_body(fixture("messenger_postback_get_started.json"))[0].key == event.key


def test_postback_with_mid_uses_it():
    [event] = parse_body(
        page_event(postback={"title": "I accept", "payload": "consent:accept", "mid": "m_pb1"})
    )
    assert (event.key, event.platform_message_id, event.button) == (
        "m_pb1",
        "m_pb1",
        "consent:accept",
    )


def test_delivery_gives_one_mark_per_mid_and_the_watermark():
    events = parse_body(
        page_event(delivery={"mids": ["m_out1", "m_out2"], "watermark": 1767225790000})
    )
    assert events == [
        StatusEvent(
            key="m_out1:delivered",
            platform_message_id="m_out1",
            state="delivered",
            client_external_id=PSID,
            at=datetime.fromtimestamp(1767225800, tz=UTC),
        ),
        StatusEvent(
            key="m_out2:delivered",
            platform_message_id="m_out2",
            state="delivered",
            client_external_id=PSID,
            at=datetime.fromtimestamp(1767225800, tz=UTC),
        ),
        StatusEvent(
            key=f"delivered:{PSID}:1767225790000",
            platform_message_id="",
            state="delivered",
            client_external_id=PSID,
            at=datetime.fromtimestamp(1767225800, tz=UTC),
            watermark=datetime.fromtimestamp(1767225790, tz=UTC),
        ),
    ]


def test_read_is_a_watermark():
    [event] = parse_body(page_event(read={"watermark": 1767225795000}))
    assert event == StatusEvent(
        key=f"read:{PSID}:1767225795000",
        platform_message_id="",
        state="read",
        client_external_id=PSID,
        at=datetime.fromtimestamp(1767225800, tz=UTC),
        watermark=datetime.fromtimestamp(1767225795, tz=UTC),
    )
    assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event


def test_attachments_are_labelled():
    [event] = parse_body(
        page_event(message={"mid": "m_att", "attachments": [{"type": "image", "payload": {}}]})
    )
    assert event.text == "[image]"


def test_other_pages_and_other_events_are_dropped():
    assert parse_body(fixture("messenger_text_message.json"), {"page_id": "1"}) == []
    assert parse_body(page_event(optin={"ref": "x"})) == []


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"\xc3\x28",
        b"null",
        b'{"object": "whatsapp_business_account", "entry": []}',
        b'{"object": "page", "entry": [{"id": "100200300400500", "messaging": {}}]}',
        b'{"object": "page", "entry": [{"id": "100200300400500", "messaging": '
        b'[{"sender": {"id": "1"}, "message": {"text": "no mid"}}]}]}',
        b'{"object": "page", "entry": [{"id": "100200300400500", "messaging": '
        b'[{"sender": {"id": "1"}, "read": {}}]}]}',
    ],
)
def test_malformed_bodies_raise_value_error(body):
    with pytest.raises(ValueError):
        PLATFORM.parse(post(body), config=CONFIG)


def test_signature_vector():
    vector = fixture("messenger_signature_vector.json")
    raw = vector["raw_body"].encode()
    header = {vector["header_name"].lower(): vector["header_value"]}
    secrets = {**SECRETS, "app_secret": vector["app_secret"]}
    PLATFORM.verify(post(raw, header), secrets=secrets, config=CONFIG)
    [event] = PLATFORM.parse(post(raw), config=CONFIG)
    assert event.text == "hello \u00e4\u00f6\u00e5"

    with pytest.raises(VerificationError) as tampered:
        PLATFORM.verify(
            post(raw.replace(b"hello", b"hallo"), header), secrets=secrets, config=CONFIG
        )
    assert tampered.value.status == 403
    reserialised = json.dumps(json.loads(raw), ensure_ascii=False).encode()
    with pytest.raises(VerificationError):
        PLATFORM.verify(post(reserialised, header), secrets=secrets, config=CONFIG)
    with pytest.raises(VerificationError) as missing:
        PLATFORM.verify(post(raw), secrets=secrets, config=CONFIG)
    assert missing.value.status == 401
    with pytest.raises(VerificationError) as unconfigured:
        PLATFORM.verify(post(raw, header), secrets={}, config=CONFIG)
    assert unconfigured.value.status == 403


def test_handshake():
    request = fixture("messenger_verify_request.json")
    get = RawRequest(method="GET", headers={}, query=request["query"], body=b"")
    reply = PLATFORM.handshake(get, secrets=SECRETS, config=CONFIG)
    assert reply is not None
    assert (reply.status, reply.body) == (200, "1158201444")
    wrong = RawRequest(
        method="GET", headers={}, query={**request["query"], "hub.verify_token": "x"}, body=b""
    )
    reply = PLATFORM.handshake(wrong, secrets=SECRETS, config=CONFIG)
    assert reply is not None and reply.status == 403
    unsubscribe = RawRequest(
        method="GET", headers={}, query={**request["query"], "hub.mode": "other"}, body=b""
    )
    reply = PLATFORM.handshake(unsubscribe, secrets=SECRETS, config=CONFIG)
    assert reply is not None and reply.status == 403
    plain = RawRequest(method="GET", headers={}, query={"x": "1"}, body=b"")
    assert PLATFORM.handshake(plain, secrets=SECRETS, config=CONFIG) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "object",
                    "entry",
                    "id",
                    "messaging",
                    "sender",
                    "recipient",
                    "timestamp",
                    "message",
                    "mid",
                    "text",
                    "is_echo",
                    "quick_reply",
                    "payload",
                    "attachments",
                    "type",
                    "postback",
                    "title",
                    "delivery",
                    "mids",
                    "watermark",
                    "read",
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
@given(value=json_values, page=st.booleans(), item=json_values)
def test_parse_fuzz_gives_events_or_value_error(value, page, item):
    if page:
        value = {
            "object": "page",
            "entry": [{"id": PAGE, "messaging": [item, {"sender": {"id": PSID}, **_dict(value)}]}],
        }
    try:
        events = PLATFORM.parse(post(json.dumps(value).encode()), config=CONFIG)
    except ValueError:
        return
    for event in events:
        assert isinstance(event, InboundMessage | StatusEvent)
        event_from_json(json.loads(json.dumps(event_to_json(event))))


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {"x": value}
