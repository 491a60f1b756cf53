"""Viber callbacks: the body signature, and every fixture callback parsed to typed events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.connectors.base import (
    Button,
    ClientEvent,
    ClientIdentity,
    InboundMessage,
    Outgoing,
    RawRequest,
    StatusEvent,
    VerificationError,
    event_from_json,
    event_to_json,
)
from openline.connectors.viber import PLATFORM
from openline.connectors.viber.outbound import message_payload
from openline.testing.fake_platforms import fixture

USER = "FakeViberUser0001AbCd=="
CUSTOMER = ClientIdentity(external_id=USER, name="Test Customer", language="en")


def request(body, headers=None) -> RawRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawRequest(method="POST", headers=headers or {}, query={}, body=raw)


def parse(body):
    events = PLATFORM.parse(request(body), config={})
    for event in events:  # every event survives the durable intake unchanged
        assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event
    return events


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def test_the_signature_vector_is_accepted():
    vector = fixture("viber_signature_vector.json")
    headers = {vector["header_name"].lower(): vector["header_value"]}
    raw = vector["raw_body"].encode("utf-8")
    PLATFORM.verify(request(raw, headers), secrets={"auth_token": vector["auth_token"]}, config={})
    # Upper-case hex is the same signature.
    headers = {vector["header_name"].lower(): vector["header_value"].upper()}
    PLATFORM.verify(request(raw, headers), secrets={"auth_token": vector["auth_token"]}, config={})


def test_a_tampered_body_a_wrong_token_or_a_wrong_header_is_refused():
    vector = fixture("viber_signature_vector.json")
    name = vector["header_name"].lower()
    raw = vector["raw_body"].encode("utf-8")
    token = vector["auth_token"]
    reserialised = json.dumps(json.loads(raw)).encode()  # same data, other bytes
    cases = [
        (raw.replace(b"A-1001", b"A-1002"), {name: vector["header_value"]}, token, 403),
        (reserialised, {name: vector["header_value"]}, token, 403),
        (raw, {name: vector["header_value"]}, token + "x", 403),
        (raw, {name: vector["header_value"][:-1] + "0"}, token, 403),
        (raw, {name: "sha256=" + vector["header_value"]}, token, 403),
        (raw, {name: "\u00e9" * 64}, token, 403),
        (raw, {}, token, 401),
        (raw, {name: ""}, token, 401),
        (raw, {name: vector["header_value"]}, "", 403),
    ]
    for body, headers, auth_token, status in cases:
        with pytest.raises(VerificationError) as caught:
            PLATFORM.verify(request(body, headers), secrets={"auth_token": auth_token}, config={})
        assert caught.value.status == status
        assert token not in str(caught.value)


def test_the_signature_vector_body_parses_to_the_text_message():
    vector = fixture("viber_signature_vector.json")
    [event] = parse(vector["raw_body"].encode())
    assert isinstance(event, InboundMessage)
    assert event.key == "5900000000000000001:message"


def test_a_text_message():
    [event] = parse(fixture("viber_message_text.json"))
    assert event == InboundMessage(
        key="5900000000000000001:message",
        client=CUSTOMER,
        text="Hi, I need help with order A-1001",
        sent_at=ms(1767225600123),
        platform_message_id="5900000000000000001",
    )


def test_a_keyboard_reply_is_a_button_press():
    [event] = parse(fixture("viber_message_keyboard_reply.json"))
    assert event == InboundMessage(
        key="5900000000000000021:message",
        client=CUSTOMER,
        text="consent:accept",
        sent_at=ms(1767225720123),
        button="consent:accept",
        platform_message_id="5900000000000000021",
    )


def test_a_versioned_consent_reply_is_a_press_with_or_without_tracking_data():
    buttons = (Button("consent:accept:42", "I accept"), Button("consent:decline:42", "No"))
    sent = message_payload(Outgoing(recipient=USER, text="?", buttons=buttons), config={})
    callback = fixture("viber_message_keyboard_reply.json")
    callback["message"]["text"] = "consent:accept:42"
    callback["message"]["tracking_data"] = sent["tracking_data"]
    [event] = parse(callback)
    assert (event.button, event.text, event.content) == ("consent:accept:42", "I accept", True)
    # A later message without a keyboard replaced the tracking data: still the same press.
    del callback["message"]["tracking_data"]
    [event] = parse(callback)
    assert (event.button, event.text) == ("consent:accept:42", "consent:accept:42")
    for typed in ("consent:accept:", "consent:accept:x", "please consent:accept:42"):
        callback["message"]["text"] = typed
        [event] = parse(callback)
        assert event.button == ""


def test_a_reply_to_our_own_keyboard_is_a_press_with_its_label():
    buttons = (Button("topic:billing", "Billing \u20ac"), Button("topic:other", "Other"))
    sent = message_payload(Outgoing(recipient=USER, text="Topic?", buttons=buttons), config={})
    callback = fixture("viber_message_text.json")
    callback["message"] = {
        "type": "text",
        "text": "topic:billing",
        "tracking_data": sent["tracking_data"],
    }
    [event] = parse(callback)
    assert isinstance(event, InboundMessage)
    assert (event.button, event.text) == ("topic:billing", "Billing \u20ac")
    # Typed text after the keyboard carries the same tracking data but is no press.
    callback["message"]["text"] = "I'd rather type"
    [event] = parse(callback)
    assert isinstance(event, InboundMessage)
    assert (event.button, event.text) == ("", "I'd rather type")


def test_ordinary_text_that_looks_like_a_payload_is_text():
    callback = fixture("viber_message_text.json")
    callback["message"]["text"] = "ticket:A-1001"
    [event] = parse(callback)
    assert isinstance(event, InboundMessage)
    assert event.button == ""


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (
            {"type": "picture", "text": "my receipt", "media": "https://x/y.jpg"},
            "[picture] my receipt",
        ),
        ({"type": "sticker", "sticker_id": 46105}, "[sticker]"),
        (
            {"type": "url", "media": "https://shop.example.com/o/1"},
            "[url] https://shop.example.com/o/1",
        ),
        ({"type": "location", "location": {"lat": 1, "lon": 2}}, "[location]"),
    ],
)
def test_messages_without_text_show_a_placeholder(message, text):
    callback = fixture("viber_message_text.json")
    callback["message"] = message
    [event] = parse(callback)
    assert isinstance(event, InboundMessage)
    assert (event.text, event.button) == (text, "")


def test_conversation_started_subscribed_and_unsubscribed():
    [started] = parse(fixture("viber_conversation_started.json"))
    assert started == ClientEvent(
        key="5900000000000000004:conversation_started", client=CUSTOMER, event="started"
    )
    [subscribed] = parse(fixture("viber_subscribed.json"))
    assert subscribed == ClientEvent(
        key="5900000000000000002:subscribed", client=CUSTOMER, event="subscribed"
    )
    [unsubscribed] = parse(fixture("viber_unsubscribed.json"))
    assert unsubscribed == ClientEvent(
        key="5900000000000000003:unsubscribed",
        client=ClientIdentity(external_id=USER),
        event="unsubscribed",
    )


def test_receipts_are_status_events_for_the_sent_message_token():
    [delivered] = parse(fixture("viber_delivered.json"))
    [seen] = parse(fixture("viber_seen.json"))
    [failed] = parse(fixture("viber_failed.json"))
    assert delivered == StatusEvent(
        key="5900000000000000010:delivered",
        platform_message_id="5900000000000000010",
        state="delivered",
        client_external_id=USER,
        at=ms(1767225672123),
    )
    assert (seen.key, seen.state, seen.platform_message_id) == (
        "5900000000000000010:seen",
        "read",
        "5900000000000000010",
    )
    assert isinstance(failed, StatusEvent)
    assert (failed.state, failed.error, failed.platform_message_id) == (
        "failed",
        "failure description",
        "5900000000000000011",
    )
    # The send answer's token is the one the receipts name (tokens exceed 2**53: exact).
    sent = fixture("viber_send_message_response.json")["message_token"]
    assert str(sent) == delivered.platform_message_id


def test_the_webhook_check_and_unknown_events_are_ignored():
    [check] = parse(fixture("viber_webhook_check.json"))
    assert check == ClientEvent(
        key="5900000000000000000:webhook", client=ClientIdentity(external_id=""), event="ignored"
    )
    [other] = parse({"event": "client_status", "message_token": 7, "timestamp": 1})
    assert isinstance(other, ClientEvent) and other.event == "ignored"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"\xff",
        b"[]",
        b'{"message_token": 1}',
        b'{"event": "message"}',
        b'{"event": 5, "message_token": 1}',
        b'{"event": "message", "message_token": 1.5}',
        b'{"event": "message", "message_token": 1, "sender": {"id": 3}, "message": {}}',
        b'{"event": "message", "message_token": 1, "sender": {"id": "u"}}',
        b'{"event": "subscribed", "message_token": 1, "user": "u"}',
        b'{"event": "unsubscribed", "message_token": 1}',
        b'{"event": "seen", "message_token": 1, "timestamp": "now"}',
        b'{"event": "seen", "message_token": 1, "timestamp": 1e400}',
        b'{"event": "seen", "message_token": 1, "timestamp": 99999999999999999999999}',
        b"{" * 100000,
    ],
)
def test_malformed_bodies_raise_value_error(body):
    with pytest.raises(ValueError):
        PLATFORM.parse(request(body), config={})


KEYS = st.sampled_from(
    [
        "event", "message_token", "timestamp", "sender", "user", "user_id", "id", "name",
        "language", "message", "type", "text", "tracking_data", "media", "desc",
    ]
)  # fmt: skip
EVENTS = st.sampled_from(
    ["message", "delivered", "seen", "failed", "subscribed", "unsubscribed",
     "conversation_started", "webhook", "text", "consent:accept"]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | EVENTS
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(KEYS | st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=30,
)
FIXTURES = [
    "viber_message_text.json",
    "viber_message_keyboard_reply.json",
    "viber_conversation_started.json",
    "viber_subscribed.json",
    "viber_unsubscribed.json",
    "viber_delivered.json",
    "viber_seen.json",
    "viber_failed.json",
    "viber_webhook_check.json",
]


def paths(value, prefix=()):
    """Every path into a decoded JSON value (dict keys and list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


@st.composite
def mutated_callbacks(draw):
    """A real callback with one value anywhere in it replaced by random JSON (or removed)."""
    body = fixture(draw(st.sampled_from(FIXTURES)))
    path = draw(st.sampled_from(list(paths(body))[1:]))
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON)
    return body


def check(body: bytes) -> None:
    try:
        events = PLATFORM.parse(request(body), config={})
    except ValueError:
        return
    [event] = events
    assert isinstance(event, InboundMessage | ClientEvent | StatusEvent)
    assert event.key.endswith(":" + json.loads(body)["event"])
    assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=JSON)
def test_fuzzed_json_gives_typed_events_or_value_error(body):
    check(json.dumps(body).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=mutated_callbacks())
def test_fuzzed_real_callbacks_give_typed_events_or_value_error(body):
    check(json.dumps(body).encode())


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=64))
def test_fuzzed_bytes_give_typed_events_or_value_error(body):
    try:
        events = PLATFORM.parse(request(body), config={})
    except ValueError:
        return
    assert all(isinstance(e, InboundMessage | ClientEvent | StatusEvent) for e in events)
