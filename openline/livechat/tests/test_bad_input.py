"""Hostile JSON at the widget: a clear 4xx over HTTP, an error frame on a socket that stays open.

Before ``core.jsonsafe`` these gave a 500 (RecursionError while parsing 9,000 nested
arrays), a 500 from the database (a lone surrogate or NUL in the text), or a websocket that
dropped without a close frame.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from openline.consent.models import ConsentRecord
from openline.conversations.models import Message
from openline.livechat.tests.helpers import WsClient, consented_visitor, run_async
from openline.livechat.tests.test_widget_http import consent_body

DEEP = "[" * 9000 + "]" * 9000


def _start(channel, raw: str) -> tuple[int, dict]:
    client = Client(raise_request_exception=False)
    response = client.post(
        f"/widget/{channel.code}/start", data=raw, content_type="application/json"
    )
    return response.status_code, response.json()


@pytest.mark.django_db
def test_deeply_nested_start_body_is_refused_with_400(channel):
    status, body = _start(channel, DEEP)
    assert (status, body["error"]) == (400, "too_deep")
    assert "nested at most" in body["message"]
    nested_text = json.dumps(consent_body(channel))[:-1] + ', "extra": ' + DEEP + "}"
    status, body = _start(channel, nested_text)
    assert (status, body["error"]) == (400, "too_deep")
    assert Message.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "code"),
    [("x\ud83d", "bad_text"), ("nul\x00byte", "bad_text")],
    ids=["lone_surrogate", "nul"],
)
def test_unstorable_start_text_is_refused_with_400(channel, text, code):
    # json.dumps writes the surrogate as the escape "\ud83d", as a browser's JSON.stringify does.
    status, body = _start(channel, json.dumps(consent_body(channel, text=text)))
    assert (status, body["error"]) == (400, code)
    assert body["message"]
    assert (Message.objects.count(), ConsentRecord.objects.count()) == (0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_the_start_body_are_refused(channel, constant):
    raw = json.dumps(consent_body(channel))[:-1] + f', "extra": {constant}}}'
    status, body = _start(channel, raw)
    assert (status, body["error"]) == (400, "bad_number")


@pytest.mark.django_db
def test_valid_start_with_an_emoji_is_accepted(channel):
    # The same path accepts a real surrogate pair (an emoji), so the checks above are not
    # refusing everything.
    status, body = _start(channel, json.dumps(consent_body(channel, text="Hi \U0001f600")))
    assert status == 201, body
    assert Message.objects.get().text == "Hi \U0001f600"


@pytest.mark.django_db(transaction=True)
def test_hostile_frames_get_an_error_frame_and_the_socket_stays_open(live_asgi, channel):
    _, token = consented_visitor(channel)
    run_async(lambda: _hostile_frames(live_asgi, channel, token))
    assert list(Message.objects.order_by("id").values_list("text", flat=True)) == [
        "Hello",
        "still here",
    ]


async def _hostile_frames(server, channel, token):
    comm = await WsClient.open(server, f"/ws/widget/{channel.code}/")
    await comm.send_json_to({"type": "auth", "token": token, "last_id": 0})
    assert (await comm.receive_json_from())["type"] == "ready"
    hostile = {
        DEEP: "too_deep",
        '{"type": "message", "text": "x\\ud83d", "client_id": "s"}': "bad_text",
        '{"type": "message", "text": "a\\u0000b", "client_id": "n"}': "bad_text",
        '{"type": "message", "text": "hi", "client_id": "n", "n": NaN}': "bad_number",
        # Past any database id: refused, not silently matched against nothing.
        '{"type": "read", "up_to": ' + str(2**70) + "}": "bad_frame",
    }
    for raw, code in hostile.items():
        await comm.send_to(text_data=raw)
        frame = await comm.receive_json_from()
        assert (frame["type"], frame["code"]) == ("error", code), frame
        assert frame["message"]
    # Still open and working: a normal message goes through on the same socket.
    await comm.send_json_to({"type": "message", "text": "still here", "client_id": "ok"})
    while (frame := await comm.receive_json_from())["type"] != "message":
        assert frame["type"] != "error", frame
    assert frame["message"]["text"] == "still here"
    await comm.ws.close()
