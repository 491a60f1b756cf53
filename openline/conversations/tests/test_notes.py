"""Private notes: written by the channel's operators, seen by operators only, never by the client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from openline.conversations import actions, notes
from openline.conversations.event_schemas import OPERATORS, VISITOR
from openline.conversations.models import ConversationNote, OutboxItem
from openline.conversations.tests.inbound_helpers import consented, send_outbox
from openline.conversations.tests.test_inbox import next_of, operator_ws
from openline.conversations.tests.verify_events import verify_action
from openline.livechat.tests.helpers import WsClient, consented_visitor, run_async
from openline.openchannels.services import create_open_channel

SECRET = "Client seems annoyed; offer the 10% voucher"


@pytest.fixture
def chat(channel):
    started, _ = consented_visitor(channel, text="Where is my parcel?")
    return started.conversation


def test_note_goes_to_the_operators_only(chat, operator):
    verified = verify_action(
        lambda: actions.add_note(conversation=chat, actor=operator, text=SECRET, client_id="n1"),
        expected_types=["note.added"],
    )
    note, created = verified.result
    assert created and note.author == operator and note.text == SECRET
    assert verified.to(VISITOR) == []
    [event] = verified.to(OPERATORS)
    assert event["note"]["text"] == SECRET and event["note"]["author"] == "Otto Operator"
    # Sent again after a reconnect: stored once, nothing published twice.
    again = verify_action(
        lambda: actions.add_note(conversation=chat, actor=operator, text=SECRET, client_id="n1"),
        expected_types=[],
    )
    assert again.result == (note, False)
    assert ConversationNote.objects.count() == 1


def test_who_may_write_notes(chat, administrator, other_operator, auditor, operator):
    assert notes.can_write_notes(administrator, chat)
    assert notes.can_write_notes(operator, chat)
    assert not notes.can_write_notes(other_operator, chat)
    assert not notes.can_write_notes(auditor, chat)
    for stranger in (other_operator, auditor):
        with pytest.raises(actions.ActionError) as refused:
            actions.add_note(conversation=chat, actor=stranger, text="sneaky")
        assert refused.value.code == "forbidden"
    with pytest.raises(actions.ActionError):
        actions.add_note(conversation=chat, actor=operator, text="   ")
    with pytest.raises(actions.ActionError):
        actions.add_note(conversation=chat, actor=operator, text="x" * 4001)
    assert not ConversationNote.objects.exists()


def test_note_form_permissions(
    chat, operator_client, auditor_client, other_operator, administrator
):
    url = reverse("conversations:add_note", args=[chat.pk])
    assert auditor_client.post(url, {"text": "audit"}).status_code == 403
    other = Client()
    other.force_login(other_operator)
    create_open_channel(
        actor=administrator, name="Shop B", operators=[other_operator], connectors=["livechat"]
    )
    assert other.post(url, {"text": "not my channel"}).status_code == 404
    assert operator_client.get(url).status_code == 405
    response = operator_client.post(url, {"text": SECRET})
    assert response.status_code == 302
    assert ConversationNote.objects.get().text == SECRET
    assert Client().post(url, {"text": "anon"}).status_code == 302  # to the login page
    assert ConversationNote.objects.count() == 1


def test_notes_are_interleaved_in_the_timeline_and_escaped(chat, operator, operator_client):
    actions.add_note(conversation=chat, actor=operator, text="<b>first note</b>")
    actions.send_reply(conversation=chat, actor=operator, text="Checking now")
    actions.add_note(conversation=chat, actor=operator, text="second note")
    page = operator_client.get(reverse("conversations:conversation", args=[chat.pk])).text
    page = page.split('id="chat-log"')[1]
    order = [
        page.index("Where is my parcel?"),
        page.index("&lt;b&gt;first note&lt;/b&gt;"),
        page.index("Checking now"),
        page.index("second note"),
    ]
    assert order == sorted(order)
    assert "<b>first note</b>" not in page
    assert "Private note · Otto Operator" in page
    assert 'id="tab-note"' in page and 'role="tab"' in page


def test_notes_never_reach_a_messenger_client(messenger_channel, operator):
    result = consented(messenger_channel)
    send_outbox(result.conversation.visitor)
    before = OutboxItem.objects.count()
    actions.add_note(conversation=result.conversation, actor=operator, text=SECRET)
    assert OutboxItem.objects.count() == before
    payloads = json.dumps(list(OutboxItem.objects.values_list("payload", flat=True)))
    assert SECRET not in payloads


def test_notes_are_not_in_the_consent_receipt(chat, operator, admin_client):
    actions.add_note(conversation=chat, actor=operator, text=SECRET)
    record = chat.consent_records.get()
    receipt = admin_client.get(reverse("consent:record_receipt", args=[record.uuid]))
    assert receipt.status_code == 200
    assert SECRET not in receipt.content.decode()
    assert SECRET not in admin_client.get(f"/console/obtained-consents/{record.uuid}/").text


# ----- over real websockets ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_notes_never_reach_the_visitor_socket_or_history(live_asgi, operator, channel):
    run_async(lambda: _notes_never_reach_the_visitor(live_asgi, operator, channel))


async def _notes_never_reach_the_visitor(live_asgi, operator, channel):
    started, token = await sync_to_async(consented_visitor)(channel, text="Hello there")
    chat = started.conversation
    visitor = await WsClient.open(live_asgi, f"/ws/widget/{channel.code}/")
    await visitor.send_json_to({"type": "auth", "token": token, "last_id": 0})
    ready = await visitor.receive_json_from()
    assert ready["type"] == "ready"
    ops = await operator_ws(live_asgi, operator)
    await next_of(ops, "ready")
    await ops.send_json_to(
        {"type": "note", "conversation": chat.pk, "text": SECRET, "client_id": "n-1"}
    )
    added = await next_of(ops, "note.added")
    assert added["note"]["text"] == SECRET and added["note"]["client_id"] == "n-1"
    # A reply after the note reaches the client: the note, sent before it, never does.
    await ops.send_json_to(
        {"type": "reply", "conversation": chat.pk, "text": "We are on it", "client_id": "r-1"}
    )
    await next_of(ops, "message")
    while True:
        frame = await visitor.receive_json_from()
        if frame["type"] == "message" and frame["message"]["text"] == "We are on it":
            break
    assert await visitor.receive_nothing(0.3)
    assert SECRET not in json.dumps(visitor.received)
    # The visitor's sync and a fresh connection's ready frame carry the history: no note.
    await visitor.send_json_to({"type": "sync", "last_id": 0})
    synced = await visitor.receive_json_from()
    again = await WsClient.open(live_asgi, f"/ws/widget/{channel.code}/")
    await again.send_json_to({"type": "auth", "token": token, "last_id": 0})
    fresh = await again.receive_json_from()
    for frame in (ready, synced, fresh):
        assert frame["type"] == "ready"
        assert SECRET not in json.dumps(frame)
    assert [m["text"] for m in fresh["messages"]] == ["Hello there", "We are on it"]
    # The operators' own sync does bring the note back (after a reconnect).
    await ops.send_json_to({"type": "sync", "conversation": chat.pk, "last_id": 0})
    history = await next_of(ops, "history")
    assert [n["text"] for n in history["notes"]] == [SECRET]
    # A note on another channel's conversation is refused like a reply.
    await ops.send_json_to({"type": "note", "conversation": 999999, "text": "x", "client_id": "x"})
    assert (await next_of(ops, "error"))["code"] == "not_found"
    await visitor.disconnect()
    await again.disconnect()
    await ops.disconnect()


@pytest.mark.parametrize(
    "module",
    [
        "openline.conversations.notes",
        "openline.conversations.actions.notes",
        "openline.conversations.actions",
    ],
)
def test_notes_modules_import_first_in_a_fresh_process(module):
    # The notes helpers and the note action must not import each other in a circle: whichever
    # a process imports first (a worker, a management command) has to load.
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE','openline.settings'); "
        f"django.setup(); import {module} as m; "
        "from openline.conversations import actions, notes; "
        "print(actions.add_note.__module__, notes.can_write_notes.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "openline.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["openline.conversations.actions.notes", "can_write_notes"]
