"""Canned replies: shared ones for administrators to manage, personal ones per operator."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from openline.conversations import canned
from openline.conversations.models import CannedReply

pytestmark = pytest.mark.django_db

LIST = "/console/canned-replies/"
NEW = "/console/canned-replies/new/"
JSON = "/console/canned-replies/mine.json"


def edit(reply) -> str:
    return reverse("conversations:canned_edit", args=[reply.pk])


def delete(reply) -> str:
    return reverse("conversations:canned_delete", args=[reply.pk])


@pytest.fixture
def shared(administrator):
    return canned.create_canned_reply(
        actor=administrator,
        title="Opening hours",
        shortcut="hours",
        text="We are open 9–18, Monday to Friday.",
        shared=True,
    )


@pytest.fixture
def olivias(other_operator):
    return canned.create_canned_reply(
        actor=other_operator, title="Olivia's hello", shortcut="hi", text="Hi, Olivia here!"
    )


def test_operator_creates_edits_and_deletes_their_own(operator_client, operator):
    page = operator_client.get(NEW)
    assert page.status_code == 200 and 'name="csrfmiddlewaretoken"' in page.text
    assert 'value="shared"' not in page.text  # operators cannot share
    response = operator_client.post(
        NEW, {"title": "Parcel", "shortcut": "/Parcel", "text": "Your parcel is on its way."}
    )
    assert response.status_code == 302 and response["Location"] == LIST
    reply = CannedReply.objects.get()
    assert (reply.owner, reply.shortcut) == (operator, "parcel")
    listing = operator_client.get(LIST).text
    assert "/parcel" in listing and "Your parcel is on its way." in listing
    response = operator_client.post(
        edit(reply), {"title": "Parcel", "shortcut": "parcel", "text": "It ships today."}
    )
    assert response.status_code == 302
    reply.refresh_from_db()
    assert reply.text == "It ships today."
    assert "Delete /parcel?" in operator_client.get(delete(reply)).text
    assert operator_client.post(delete(reply)).status_code == 302
    assert not CannedReply.objects.exists()


def test_operator_cannot_share_even_by_posting_it(operator_client):
    response = operator_client.post(
        NEW, {"title": "T", "shortcut": "t", "text": "x", "scope": "shared"}
    )
    assert response.status_code == 403
    assert not CannedReply.objects.exists()


def test_validation_and_unique_shortcuts_per_scope(
    operator_client, operator, administrator, shared, olivias
):
    empty = operator_client.post(NEW, {"title": "", "shortcut": "two words", "text": ""})
    assert empty.status_code == 200
    assert "Give the reply a title." in empty.text
    assert "lowercase letters, digits" in empty.text
    assert "Write the reply&#x27;s text." in empty.text
    # The same shortcut as a shared reply or as another operator's is fine (another scope).
    for shortcut in ("hours", "hi"):
        operator_client.post(NEW, {"title": shortcut, "shortcut": shortcut, "text": "mine"})
    assert CannedReply.objects.filter(owner=operator).count() == 2
    twice = operator_client.post(NEW, {"title": "again", "shortcut": "hi", "text": "x"})
    assert "You already have a reply with this shortcut." in twice.text
    assert CannedReply.objects.filter(owner=operator).count() == 2
    with pytest.raises(ValidationError, match="shared reply already uses"):
        canned.create_canned_reply(
            actor=administrator, title="x", shortcut="hours", text="x", shared=True
        )


def test_operator_cannot_change_shared_or_others_replies(operator_client, shared, olivias):
    assert operator_client.get(edit(shared)).status_code == 403
    assert (
        operator_client.post(edit(shared), {"title": "x", "shortcut": "x", "text": "x"}).status_code
        == 403
    )
    assert operator_client.post(delete(shared)).status_code == 403
    assert operator_client.get(edit(olivias)).status_code == 404
    assert operator_client.post(delete(olivias)).status_code == 404
    shared.refresh_from_db()
    assert shared.text.startswith("We are open") and CannedReply.objects.count() == 2
    listing = operator_client.get(LIST).text
    assert "/hours" in listing and "Managed by administrators" in listing
    assert "/hi<" not in listing and "Olivia here" not in listing


def test_administrator_manages_shared_replies(admin_client, shared):
    assert 'value="shared"' in admin_client.get(NEW).text
    response = admin_client.post(
        NEW, {"title": "Bye", "shortcut": "bye", "text": "Have a nice day!", "scope": "shared"}
    )
    assert response.status_code == 302
    assert CannedReply.objects.get(shortcut="bye").owner is None
    admin_client.post(edit(shared), {"title": "Hours", "shortcut": "hours", "text": "9 to 5."})
    shared.refresh_from_db()
    assert shared.text == "9 to 5."
    admin_client.post(delete(shared))
    assert not CannedReply.objects.filter(pk=shared.pk).exists()


def test_auditors_and_strangers_are_refused(auditor_client, shared):
    for url in (LIST, NEW, JSON, edit(shared), delete(shared)):
        assert auditor_client.get(url).status_code == 403
        assert Client().get(url).status_code == 302
    assert auditor_client.post(NEW, {"title": "a", "shortcut": "a", "text": "a"}).status_code == 403
    assert CannedReply.objects.count() == 1


def test_json_offers_own_then_shared(operator_client, operator, shared, olivias):
    canned.create_canned_reply(actor=operator, title="Mine", shortcut="zz", text="<b>mine</b>")
    response = operator_client.get(JSON)
    assert response.status_code == 200 and response["Cache-Control"] == "private, no-store"
    replies = response.json()["replies"]
    assert [(r["shortcut"], r["shared"]) for r in replies] == [("zz", False), ("hours", True)]
    assert replies[0]["text"] == "<b>mine</b>"  # raw: the reply box inserts it as text


def test_canned_replies_escape_their_text(operator_client, operator):
    canned.create_canned_reply(
        actor=operator,
        title="<script>x</script>",
        shortcut="x",
        text="<img src=x onerror=alert(1)>",
    )
    listing = operator_client.get(LIST).text
    assert "<script>x</script>" not in listing and "&lt;script&gt;x&lt;/script&gt;" in listing
    assert "<img src=x" not in listing
