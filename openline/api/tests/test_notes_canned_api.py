"""Private notes and canned replies over the API: roles, channels, scopes, validation."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from openline.accounts.api_tokens import create_token
from openline.conversations import actions, canned
from openline.conversations.models import CannedReply, Conversation, ConversationNote
from openline.livechat.tests.helpers import WsClient, consented_visitor, run_async
from openline.openchannels.services import create_open_channel

NOTES = "/api/v1/conversation-notes"
CANNED = "/api/v1/canned-replies"
SECRET = "Private: the client owes us 40 EUR"


def _send(client: Client, method: str, url: str, body, **headers):
    return getattr(client, method)(
        url, data=json.dumps(body), content_type="application/json", **headers
    )


def _bearer(user, **options) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {create_token(user, 'tooling', **options).secret}"}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _chat(channel, origin: str = "livechat", external_id: str = ""):
    visitor = actions.create_visitor(channel=channel, origin=origin)
    if external_id:
        visitor.external_id = external_id
        visitor.save(update_fields=["external_id"])
    conversation = actions.start_conversation(channel=channel, visitor=visitor)
    actions.receive_message(conversation=conversation, visitor=visitor, text="Hi", client_id="c1")
    return Conversation.objects.get(pk=conversation.pk)


@pytest.fixture
def shop(administrator, other_operator):
    return create_open_channel(actor=administrator, name="Shop", operators=[other_operator])


def test_notes_per_role_and_channel(
    admin_client, operator_client, auditor_client, operator, administrator, channel, shop
):
    mine = _chat(channel)
    theirs = _chat(shop, origin="telegram", external_id="55")
    created = _send(operator_client, "post", f"{NOTES}/{mine.pk}", {"text": "Call back Monday"})
    assert created.status_code == 201
    body = created.json()
    assert body["text"] == "Call back Monday" and body["author_id"] == operator.pk
    assert body["conversation_id"] == mine.pk
    admin_note = _send(admin_client, "post", f"{NOTES}/{mine.pk}", {"text": "Agreed"})
    assert admin_note.status_code == 201
    # Newest first, with cursor pages.
    page = operator_client.get(f"{NOTES}/{mine.pk}?limit=1").json()
    assert [n["text"] for n in page["items"]] == ["Agreed"]
    older = operator_client.get(f"{NOTES}/{mine.pk}?limit=1&cursor={page['next_cursor']}").json()
    assert [n["text"] for n in older["items"]] == ["Call back Monday"]
    assert older["next_cursor"] is None
    # Another channel's conversation is 404 for reading and writing; nothing is stored.
    assert operator_client.get(f"{NOTES}/{theirs.pk}").status_code == 404
    refused = _send(operator_client, "post", f"{NOTES}/{theirs.pk}", {"text": "Sneaky"})
    assert refused.status_code == 404
    assert not ConversationNote.objects.filter(conversation=theirs).exists()
    assert admin_client.get(f"{NOTES}/{theirs.pk}").json()["items"] == []
    assert _send(admin_client, "post", f"{NOTES}/{theirs.pk}", {"text": "Ok"}).status_code == 201
    # Auditors never see notes; anonymous callers are 401; an unknown conversation is 404.
    assert auditor_client.get(f"{NOTES}/{mine.pk}").status_code == 403
    assert _send(auditor_client, "post", f"{NOTES}/{mine.pk}", {"text": "x"}).status_code == 403
    assert Client().get(f"{NOTES}/{mine.pk}").status_code == 401
    assert admin_client.get(f"{NOTES}/999999").status_code == 404


def test_note_client_id_validation_and_read_only_token(operator, channel):
    chat = _chat(channel)
    client = Client()
    token = _bearer(operator)
    url = f"{NOTES}/{chat.pk}"
    first = _send(client, "post", url, {"text": "Check order 12", "client_id": "n-1"}, **token)
    again = _send(client, "post", url, {"text": "Check order 12", "client_id": "n-1"}, **token)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert ConversationNote.objects.filter(conversation=chat).count() == 1
    for body, field in (
        ({"text": ""}, "text"),
        ({"text": "x" * (actions.MAX_TEXT + 1)}, "text"),
        ({"text": "ok", "client_id": "c" * (actions.MAX_CLIENT_ID + 1)}, "client_id"),
        ({}, "text"),
    ):
        refused = _send(client, "post", url, body, **token)
        assert refused.status_code == 422, body
        assert field in json.dumps(refused.json()), body
    blank = _send(client, "post", url, {"text": "   "}, **token)
    assert blank.status_code == 422 and blank.json()["detail"].startswith("text:")
    read_only = _bearer(operator, read_only=True)
    refused = _send(client, "post", url, {"text": "Nope"}, **read_only)
    assert refused.status_code == 403 and refused.json()["code"] == "read_only_token"
    assert client.get(url, **read_only).status_code == 200
    assert ConversationNote.objects.filter(conversation=chat).count() == 1


def test_canned_reply_scopes(administrator, operator, other_operator, auditor):
    shared = canned.create_canned_reply(
        actor=administrator, title="Hello", shortcut="hello", text="Hi!", shared=True
    )
    own = canned.create_canned_reply(actor=operator, title="Bye", shortcut="bye", text="Bye!")
    foreign = canned.create_canned_reply(
        actor=other_operator, title="Mine", shortcut="mine", text="Secret wording"
    )
    op = _client(operator)
    listed = op.get(CANNED).json()["items"]
    assert {r["id"]: (r["shared"], r["can_manage"]) for r in listed} == {
        shared.pk: (True, False),
        own.pk: (False, True),
    }
    assert [r["id"] for r in op.get(f"{CANNED}?shared=true").json()["items"]] == [shared.pk]
    assert op.get(f"{CANNED}/{shared.pk}").json()["text"] == "Hi!"
    # Another person's personal reply is as if it did not exist.
    assert op.get(f"{CANNED}/{foreign.pk}").status_code == 404
    assert _send(op, "patch", f"{CANNED}/{foreign.pk}", {"text": "x"}).status_code == 404
    assert op.delete(f"{CANNED}/{foreign.pk}").status_code == 404
    # Shared replies are the administrators' to change.
    assert _send(op, "patch", f"{CANNED}/{shared.pk}", {"text": "Yo"}).status_code == 403
    assert op.delete(f"{CANNED}/{shared.pk}").status_code == 403
    refused = _send(
        op, "post", CANNED, {"title": "T", "shortcut": "t", "text": "x", "shared": True}
    )
    assert refused.status_code == 403
    # The owner changes and deletes their own; the scope stays.
    changed = _send(op, "patch", f"{CANNED}/{own.pk}", {"shortcut": "/Ciao"})
    assert changed.status_code == 200
    assert (changed.json()["shortcut"], changed.json()["text"]) == ("ciao", "Bye!")
    assert op.delete(f"{CANNED}/{own.pk}").status_code == 204
    assert not CannedReply.objects.filter(pk=own.pk).exists()
    # Administrators manage shared replies and may clean up anyone's.
    admin = _client(administrator)
    assert _send(admin, "patch", f"{CANNED}/{shared.pk}", {"text": "Hi there!"}).json()["text"] == (
        "Hi there!"
    )
    assert admin.get(f"{CANNED}/{foreign.pk}").status_code == 200
    made = _send(
        admin, "post", CANNED, {"title": "T", "shortcut": "t", "text": "x", "shared": True}
    )
    assert made.status_code == 201 and made.json()["shared"] and made.json()["owner_id"] is None
    assert admin.delete(f"{CANNED}/{foreign.pk}").status_code == 204
    # Auditors keep no canned replies.
    aud = _client(auditor)
    assert aud.get(CANNED).status_code == 403
    assert aud.get(f"{CANNED}/{shared.pk}").status_code == 403
    assert (
        _send(aud, "post", CANNED, {"title": "T", "shortcut": "a", "text": "x"}).status_code == 403
    )


def test_canned_validation_names_the_field_and_read_only_token(operator):
    client = Client()
    token = _bearer(operator)
    made = _send(
        client, "post", CANNED, {"title": "Hi", "shortcut": "hi", "text": "Hello"}, **token
    )
    assert made.status_code == 201 and made.json()["owner_id"] == operator.pk
    for body, field in (
        ({"title": "", "shortcut": "a", "text": "x"}, "title"),
        ({"title": "T", "shortcut": "has space", "text": "x"}, "shortcut"),
        ({"title": "T", "shortcut": "hi", "text": "x"}, "shortcut"),  # taken
        ({"title": "T", "shortcut": "b", "text": "  "}, "text"),
        ({"title": "T", "shortcut": "b"}, "text"),
        ({"title": "T" * (canned.MAX_TITLE + 1), "shortcut": "b", "text": "x"}, "title"),
    ):
        refused = _send(client, "post", CANNED, body, **token)
        assert refused.status_code == 422, body
        assert field in json.dumps(refused.json()), body
    reply_id = made.json()["id"]
    refused = _send(client, "patch", f"{CANNED}/{reply_id}", {"shortcut": "!"}, **token)
    assert refused.status_code == 422 and refused.json()["detail"].startswith("shortcut:")
    read_only = _bearer(operator, read_only=True)
    for method, url, body in (
        ("post", CANNED, {"title": "X", "shortcut": "x", "text": "x"}),
        ("patch", f"{CANNED}/{reply_id}", {"text": "changed"}),
        ("delete", f"{CANNED}/{reply_id}", {}),
    ):
        refused = _send(client, method, url, body, **read_only)
        assert refused.status_code == 403 and refused.json()["code"] == "read_only_token"
    assert client.get(f"{CANNED}/{reply_id}", **read_only).json()["text"] == "Hello"
    assert CannedReply.objects.filter(owner=operator).count() == 1


# ----- over a real websocket ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_note_added_over_the_api_never_reaches_the_visitor(live_asgi, operator, channel):
    started, token = consented_visitor(channel, text="Hello there")
    chat = started.conversation
    client = Client()
    added = _send(client, "post", f"{NOTES}/{chat.pk}", {"text": SECRET}, **_bearer(operator))
    assert added.status_code == 201
    run_async(lambda: _visitor_history(live_asgi, channel, token, chat.pk))


async def _visitor_history(live_asgi, channel, token, conversation_id):
    visitor = await WsClient.open(live_asgi, f"/ws/widget/{channel.code}/")
    await visitor.send_json_to({"type": "auth", "token": token, "last_id": 0})
    ready = await visitor.receive_json_from()
    assert ready["type"] == "ready"
    assert [m["text"] for m in ready["messages"]] == ["Hello there"]
    assert SECRET not in json.dumps(ready)
    assert await sync_to_async(
        ConversationNote.objects.filter(conversation_id=conversation_id, text=SECRET).exists
    )()
    await visitor.disconnect()
