"""Telegram webhooks: the secret header, and every fixture Update parsed to typed events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.connectors.base import (
    ClientEvent,
    ClientIdentity,
    InboundMessage,
    RawRequest,
    StatusEvent,
    VerificationError,
    event_from_json,
    event_to_json,
)
from openline.connectors.telegram import PLATFORM
from openline.testing.fake_platforms import fixture

SECRET = "cc_TgWebhookSecret-0123456789abcdef"
IVAN = ClientIdentity(
    external_id="111222333", name="Ivan Testov", language="ru", username="ivan_test_cc"
)


def request(body, headers=None) -> RawRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawRequest(method="POST", headers=headers or {}, query={}, body=raw)


def parse(body):
    events = PLATFORM.parse(request(body), config={})
    for event in events:  # every event survives the durable intake unchanged
        assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event
    return events


def webhook_headers() -> dict[str, str]:
    headers = fixture("telegram_webhook_request_headers.json")["headers"]
    return {name.lower(): value for name, value in headers.items()}


def test_the_secret_header_from_telegram_is_accepted():
    headers = webhook_headers()
    assert headers["x-telegram-bot-api-secret-token"] == SECRET
    PLATFORM.verify(
        request(fixture("telegram_update_text.json"), headers),
        secrets={"bot_token": "1:x", "secret_token": SECRET},
        config={},
    )


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("", 401), (SECRET + "x", 403), (SECRET[:-1], 403), ("wrong", 403)],
)
def test_a_missing_or_wrong_secret_header_is_refused(header, status):
    headers = {} if header is None else {"x-telegram-bot-api-secret-token": header}
    with pytest.raises(VerificationError) as caught:
        PLATFORM.verify(request(b"{}", headers), secrets={"secret_token": SECRET}, config={})
    assert caught.value.status == status
    assert SECRET not in str(caught.value)


def test_no_configured_secret_accepts_nothing():
    headers = {"x-telegram-bot-api-secret-token": ""}
    for secrets in ({}, {"secret_token": ""}):
        with pytest.raises(VerificationError):
            PLATFORM.verify(request(b"{}", webhook_headers()), secrets=secrets, config={})
        with pytest.raises(VerificationError):
            PLATFORM.verify(request(b"{}", headers), secrets=secrets, config={})


def test_a_text_message():
    [event] = parse(fixture("telegram_update_text.json"))
    assert event == InboundMessage(
        key="700000102",
        client=IVAN,
        text="Hello, I need help with my order #A-1001",
        sent_at=datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
        platform_message_id="42",
    )


def test_start_is_a_message_the_core_decides_about():
    [event] = parse(fixture("telegram_update_start.json"))
    assert isinstance(event, InboundMessage)
    assert (event.key, event.text, event.button, event.client) == ("700000101", "/start", "", IVAN)


def test_a_message_keeps_the_language_and_non_bmp_names():
    [event] = parse(fixture("telegram_update_text_language.json"))
    assert isinstance(event, InboundMessage)
    assert event.client == ClientIdentity(
        external_id="111222444",
        name="\u03a3\u03bf\u03c6\u03af\u03b1 \U0001f33b M\u00fcller",
        language="de",
        username="sofia_test_cc",
    )
    assert event.text.startswith("Hallo \U0001f44b ich habe")
    assert event.key == "700000106"


def test_an_edited_message_is_acknowledged_and_ignored():
    [event] = parse(fixture("telegram_update_edited_text.json"))
    assert isinstance(event, ClientEvent)
    assert (event.key, event.event) == ("700000103", "ignored")


def test_a_button_press_carries_the_payload_the_label_and_the_callback_id():
    [event] = parse(fixture("telegram_update_callback_query.json"))
    assert event == InboundMessage(
        key="700000105",
        client=IVAN,
        text="I accept",
        button="consent:accept",
        platform_message_id="4776143213165740101",
    )


def test_a_button_press_without_its_message_uses_the_payload_as_text():
    update = fixture("telegram_update_callback_query.json")
    del update["callback_query"]["message"]
    [event] = parse(update)
    assert isinstance(event, InboundMessage)
    assert (event.text, event.button, event.client) == ("consent:accept", "consent:accept", IVAN)


def test_blocking_the_bot_unsubscribes_and_unblocking_subscribes():
    update = fixture("telegram_update_bot_blocked.json")
    [event] = parse(update)
    assert event == ClientEvent(key="700000104", client=IVAN, event="unsubscribed")
    update["my_chat_member"]["new_chat_member"]["status"] = "member"
    update["update_id"] = 700000110
    [event] = parse(update)
    assert event == ClientEvent(key="700000110", client=IVAN, event="subscribed")


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        ({"photo": [{"file_id": "f"}], "caption": "my receipt"}, "[photo] my receipt"),
        ({"sticker": {"file_id": "s", "emoji": "x"}}, "[sticker]"),
        ({"voice": {"file_id": "v"}}, "[voice]"),
        # Unknown, without text or caption: named, but never taken as the client writing.
        ({"something_new": {}}, "[something_new]"),
    ],
)
def test_messages_without_text_show_a_placeholder(extra, text):
    update = fixture("telegram_update_text.json")
    del update["message"]["text"]
    update["message"].update(extra)
    [event] = parse(update)
    assert isinstance(event, InboundMessage)
    assert event.text == text
    assert event.content is (text != "[something_new]")


def test_group_messages_and_unknown_updates_are_ignored():
    update = fixture("telegram_update_text.json")
    update["message"]["chat"] = {"id": -100123, "type": "supergroup", "title": "Group"}
    assert [e.event for e in parse(update) if isinstance(e, ClientEvent)] == ["ignored"]
    [event] = parse({"update_id": 5, "channel_post": {"message_id": 1}})
    assert event == ClientEvent(key="5", client=ClientIdentity(external_id=""), event="ignored")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b"null",
        b'{"message": {}}',
        b'{"update_id": "1"}',
        b'{"update_id": true}',
        b'{"update_id": 1, "message": []}',
        b'{"update_id": 1, "message": {"chat": {"id": "x", "type": "private"}}}',
        b'{"update_id": 1, "message": {"message_id": 1, "date": 99999999999999999,'
        b' "chat": {"id": 1, "type": "private"}}}',
        b'{"update_id": 1, "callback_query": {"from": {"id": 1}}}',
        b"[" * 100000,
    ],
)
def test_malformed_bodies_raise_value_error(body):
    with pytest.raises(ValueError):
        PLATFORM.parse(request(body), config={})


KEYS = st.sampled_from(
    [
        "update_id", "message", "edited_message", "callback_query", "my_chat_member", "chat",
        "from", "id", "type", "text", "date", "message_id", "data", "reply_markup",
        "inline_keyboard", "callback_data", "new_chat_member", "status", "first_name",
        "last_name", "language_code", "username", "is_bot", "caption", "photo",
    ]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["private", "group", "kicked", "member", "consent:accept"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(KEYS | st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=JSON)
def test_fuzzed_updates_give_typed_events_or_value_error(body):
    try:
        events = PLATFORM.parse(request(json.dumps(body).encode()), config={})
    except ValueError:
        return
    assert len(events) == 1
    assert isinstance(events[0], InboundMessage | ClientEvent | StatusEvent)
    assert event_from_json(json.loads(json.dumps(event_to_json(events[0])))) == events[0]


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=64))
def test_fuzzed_bytes_give_typed_events_or_value_error(body):
    try:
        events = PLATFORM.parse(request(body), config={})
    except ValueError:
        return
    assert all(isinstance(e, InboundMessage | ClientEvent) for e in events)


FIXTURES = [
    "telegram_update_text.json",
    "telegram_update_start.json",
    "telegram_update_text_language.json",
    "telegram_update_edited_text.json",
    "telegram_update_callback_query.json",
    "telegram_update_bot_blocked.json",
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
def mutated_updates(draw):
    """A real Update with one value anywhere in it replaced by random JSON (or removed)."""
    update = fixture(draw(st.sampled_from(FIXTURES)))
    path = draw(st.sampled_from(list(paths(update))[1:]))
    parent = update
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON)
    return update


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(update=mutated_updates())
def test_fuzzed_real_updates_give_typed_events_or_value_error(update):
    try:
        events = PLATFORM.parse(request(update), config={})
    except ValueError:
        return
    [event] = events
    assert isinstance(event, InboundMessage | ClientEvent)
    assert event.key == str(update["update_id"])
    assert isinstance(event.client.external_id, str)
    assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event


# ----- review fixes: bot-scoped keys, service messages, versioned consent buttons ----------


def test_keys_carry_the_bot_id_when_it_is_known():
    update = fixture("telegram_update_text.json")
    [event] = PLATFORM.parse(request(update), config={"bot_id": 999000111})
    assert event.key == f"999000111:{update['update_id']}"
    # Another bot's update with the same update_id is another event.
    [other] = PLATFORM.parse(request(update), config={"bot_id": "999000222"})
    assert other.key == f"999000222:{update['update_id']}" != event.key
    [bare] = parse(update)
    assert bare.key == str(update["update_id"])


def test_ignored_updates_carry_the_bot_id_too():
    [event] = PLATFORM.parse(
        request(fixture("telegram_update_edited_text.json")), config={"bot_id": 7}
    )
    assert (event.key, event.event) == ("7:700000103", "ignored")


@pytest.mark.parametrize(
    "service",
    [
        {"message_auto_delete_timer_changed": {"message_auto_delete_time": 86400}},
        {"pinned_message": {"message_id": 5, "date": 1700000000, "chat": {"id": 1}}},
        {"new_chat_members": [{"id": 5, "is_bot": False, "first_name": "A"}]},
        {"write_access_allowed": {}},
    ],
)
def test_service_messages_are_shown_but_are_not_content(service):
    update = fixture("telegram_update_text.json")
    del update["message"]["text"]
    update["message"].pop("entities", None)
    update["message"].update(service)
    [event] = parse(update)
    assert isinstance(event, InboundMessage)
    assert event.content is False
    assert event.text == f"[{next(iter(service))}]"


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        ({"text": "hello"}, "hello"),
        ({"sticker": {}}, "[sticker]"),
        ({"caption": "c"}, "[message] c"),
    ],
)
def test_text_media_and_captions_are_content(extra, text):
    update = fixture("telegram_update_text.json")
    del update["message"]["text"]
    update["message"].pop("entities", None)
    update["message"].update(extra)
    [event] = parse(update)
    assert (event.text, event.content) == (text, True)


def test_a_versioned_consent_button_is_passed_through_unchanged():
    update = fixture("telegram_update_callback_query.json")
    payload = "consent:decline:9223372036854775807"  # the largest version id: 35 bytes
    update["callback_query"]["data"] = payload
    for row in update["callback_query"]["message"]["reply_markup"]["inline_keyboard"]:
        for button in row:
            if button["callback_data"] == "consent:accept":
                button["callback_data"] = payload
    [event] = parse(update)
    assert (event.button, event.text, event.content) == (payload, "I accept", True)


def test_the_content_flag_round_trips_and_old_stored_events_still_load():
    [event] = parse(fixture("telegram_update_text.json"))
    stored = event_to_json(event)
    assert stored["content"] is True
    del stored["content"]  # stored before the flag existed
    assert event_from_json(stored) == event
    service = InboundMessage(key="1", client=IVAN, text="[pinned_message]", content=False)
    assert event_from_json(json.loads(json.dumps(event_to_json(service)))) == service
