"""The read-only transcript: who may read it (by role and channel), what it shows, and the
consent record page linking to it."""

from __future__ import annotations

import pytest
from django.test import Client

from openline.consent.models import ConsentRecord

pytestmark = pytest.mark.django_db


def _url(chat) -> str:
    return f"/console/transcripts/{chat.pk}/"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_administrators_auditors_and_the_channels_operators_read_it(
    admin_client, auditor_client, operator_client, known_chat
):
    for client in (admin_client, auditor_client, operator_client):
        response = client.get(_url(known_chat))
        assert response.status_code == 200
        assert "Hello, I&#x27;d like a quote" in response.text


def test_an_operator_of_another_channel_gets_404_and_strangers_log_in(other_operator, known_chat):
    assert _client(other_operator).get(_url(known_chat)).status_code == 404
    anonymous = Client().get(_url(known_chat))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")


def test_unknown_conversations_are_404_for_every_role(admin_client, auditor_client):
    assert admin_client.get("/console/transcripts/999999/").status_code == 404
    assert auditor_client.get("/console/transcripts/999999/").status_code == 404


def test_it_is_read_only(auditor_client, admin_client, known_chat):
    for method in ("post", "put", "patch", "delete"):
        assert getattr(auditor_client, method)(_url(known_chat)).status_code == 405
    page = admin_client.get(_url(known_chat)).text
    assert "<textarea" not in page and 'method="post" action="/console/inbox' not in page


def test_it_shows_sender_time_state_and_the_clients_consent_records(auditor_client, known_chat):
    page = auditor_client.get(_url(known_chat)).text
    assert 'id="transcript-client">Jane Doe</strong>' in page
    assert '<strong class="transcript-sender">Jane Doe</strong>' in page
    assert "<time datetime=" in page
    for record in ConsentRecord.objects.filter(visitor=known_chat.visitor):
        assert f"/console/obtained-consents/{record.uuid}/" in page
    # Auditors have no inbox: no link to it.
    assert "Open in Inbox" not in page


def test_client_text_is_escaped(admin_client, unknown_chat):
    page = admin_client.get(_url(unknown_chat)).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;b&gt;hi&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_record_page_links_auditors_to_the_transcript_and_others_to_both(
    admin_client, auditor_client, known_chat
):
    record = ConsentRecord.objects.filter(conversation=known_chat).first()
    url = f"/console/obtained-consents/{record.uuid}/"
    audit_page = auditor_client.get(url).text
    assert f'href="/console/transcripts/{known_chat.pk}/"' in audit_page
    assert f'href="/console/inbox/{known_chat.pk}/"' not in audit_page
    admin_page = admin_client.get(url).text
    assert f'href="/console/transcripts/{known_chat.pk}/"' in admin_page
    assert f'href="/console/inbox/{known_chat.pk}/"' in admin_page


def test_auditors_read_only_conversations_a_consent_record_points_to(
    auditor_client, admin_client, channel, known_chat, caplog
):
    """The evidence they audit, not every chat: a chat no record names is 404 for auditors."""
    from openline.conversations.models import Conversation

    chat = Conversation.objects.create(
        channel=channel, visitor=known_chat.visitor, origin=known_chat.origin
    )
    assert not ConsentRecord.objects.filter(conversation=chat).exists()
    assert auditor_client.get(_url(chat)).status_code == 404
    assert admin_client.get(_url(chat)).status_code == 200
    with caplog.at_level("INFO", logger="openline.audit.transcripts"):
        assert auditor_client.get(_url(known_chat)).status_code == 200
    assert f"conversation={known_chat.pk}" in caplog.text
