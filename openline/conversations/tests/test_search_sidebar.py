"""Inbox search (client names from the CRM, message text, visibility) and the client sidebar."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from openline.conversations import actions
from openline.conversations.consumers import visible_conversations
from openline.conversations.models import Conversation, Message, Visitor
from openline.conversations.search import search_conversations, snippet
from openline.conversations.sidebar import summarise_user_agent
from openline.crm.services import save_conversation_to_crm
from openline.livechat import flows
from openline.livechat.tests.helpers import consented_visitor
from openline.openchannels.services import create_open_channel

pytestmark = pytest.mark.django_db

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture
def chat(channel):
    started, _ = consented_visitor(channel, text="My order 4711 never arrived")
    return started.conversation


@pytest.fixture
def other_chat(administrator, other_operator):
    other = create_open_channel(
        actor=administrator, name="Shop B", operators=[other_operator], connectors=["livechat"]
    )
    visitor = flows.create_livechat_visitor(channel=other, language="en", user_agent="x")
    conversation = actions.start_conversation(channel=other, visitor=visitor)
    actions.receive_message(conversation=conversation, visitor=visitor, text="order 4711 too")
    return conversation


@contextmanager
def sql_params():
    """Collect the parameters of every SQL statement run inside the block."""
    seen: list[tuple] = []

    def wrapper(execute, sql, params, many, context):
        seen.append(tuple(params or ()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield seen


def many_chats(channel, count: int, *, name: str = "", texts=()) -> list[Conversation]:
    """Create ``count`` visitors with one conversation each (and its messages), in bulk."""
    visitors = Visitor.objects.bulk_create(
        Visitor(origin="livechat", channel=channel, name=name) for _ in range(count)
    )
    chats = Conversation.objects.bulk_create(
        Conversation(channel=channel, visitor=v, origin="livechat") for v in visitors
    )
    Message.objects.bulk_create(
        Message(conversation=c, sender="visitor", text=text, client_id=f"m{i}")
        for c in chats
        for i, text in enumerate(texts)
    )
    return chats


def rows(client, query) -> list[int]:
    response = client.get(reverse("conversations:inbox"), {"q": query})
    assert response.status_code == 200
    return [row["id"] for row in response.context["rows"]]


def test_search_finds_message_text_with_an_escaped_snippet(operator_client, chat, channel):
    started, _ = consented_visitor(
        channel, text="<script>alert(1)</script> 4711 again", client_id="b", ip="203.0.113.8"
    )
    found = rows(operator_client, "4711")
    assert set(found) == {chat.pk, started.conversation.pk}
    page = operator_client.get("/console/inbox/", {"q": "4711"}).text
    assert "My order <mark>4711</mark> never arrived" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <mark>4711</mark> again" in page
    assert rows(operator_client, "nothing like this") == []
    assert "Nothing matches" in operator_client.get("/console/inbox/", {"q": "zzz"}).text


def test_search_respects_visibility(
    operator_client, admin_client, chat, other_chat, other_operator
):
    assert rows(operator_client, "4711") == [chat.pk]
    assert set(rows(admin_client, "4711")) == {chat.pk, other_chat.pk}
    olivia = Client()
    olivia.force_login(other_operator)
    assert rows(olivia, "4711") == [other_chat.pk]


def test_search_finds_clients_by_crm_name_email_and_phone(operator_client, operator, chat):
    save_conversation_to_crm(
        actor=operator,
        conversation=chat,
        name="Margarethe Kowalski",
        email="m.kowalski@example.org",
        phone="+48 601 234 567",
    )
    for query in ("kowalski", "Margarethe", "m.kowalski@example", "601 234"):
        assert rows(operator_client, query) == [chat.pk], query
    # The list and the chat show the name, not a pseudonym.
    page = operator_client.get("/console/inbox/", {"q": "kowalski"}).text
    assert "Margarethe Kowalski" in page
    chat_page = operator_client.get(reverse("conversations:conversation", args=[chat.pk])).text
    assert '<h2 id="chat-title">Margarethe Kowalski</h2>' in chat_page
    assert 'id="cp-crm-link"' in chat_page


def test_search_by_name_stays_within_visibility(other_operator, operator, chat):
    save_conversation_to_crm(actor=operator, conversation=chat, name="Margarethe Kowalski")
    olivia = Client()
    olivia.force_login(other_operator)
    assert rows(olivia, "kowalski") == []


def test_a_search_matching_2000_clients_is_a_subquery_not_2000_parameters(
    operator, operator_client, channel
):
    chats = many_chats(channel, 2000, name="Anna Nowak")

    with CaptureQueriesContext(connection) as queries, sql_params() as params:
        hits = search_conversations(visible_conversations(operator), "nowak", limit=50)
    assert len(hits) == 50 and {c.pk for c, _ in hits} <= {c.pk for c in chats}
    assert len(queries) <= 2
    assert max(len(p) for p in params) <= 60, [len(p) for p in params]
    assert "IN (SELECT" in queries[0]["sql"].upper()

    # The whole inbox page, names of its rows included, stays far from one id per client.
    with sql_params() as params:
        found = rows(operator_client, "nowak")
    assert len(found) == 100
    assert max(len(p) for p in params) <= 150, [len(p) for p in params]


def test_one_character_or_few_digits_do_not_match_every_client(operator_client, channel, chat):
    many_chats(channel, 5, name="Anna Nowak")
    jane = many_chats(channel, 1, name="Jane")[0]
    jane.visitor.phone = "+49 30 1234567"
    jane.visitor.save(update_fields=["phone"])
    # (None of these is in a message: message text still matches from one character on.)
    for query in ("w", "J", "3", "30 1"):
        assert rows(operator_client, query) == [], query
    assert rows(operator_client, "Ja") == [jane.pk]
    assert rows(operator_client, "30 1234") == [jane.pk]
    # Message text is still found from its first digits on, as before.
    assert rows(operator_client, "47") == [chat.pk]


def test_the_snippet_is_the_newest_matching_message_from_one_bounded_query(operator, channel):
    chats = many_chats(
        channel, 30, texts=["parcel 4711 is late", "no match here", "parcel 4711 arrived"]
    )
    with CaptureQueriesContext(connection) as queries, sql_params() as params:
        hits = search_conversations(visible_conversations(operator), "4711", limit=20)

    assert len(hits) == 20 and {c.pk for c, _ in hits} <= {c.pk for c in chats}
    assert all(
        s is not None and (s.before, s.match, s.after) == ("parcel ", "4711", " arrived")
        for _, s in hits
    )
    # The page, then one query for the snippets: one message per conversation (LIMIT 1 each).
    assert len(queries) == 2
    assert "LIMIT 1" in queries[1]["sql"].upper()
    assert max(len(p) for p in params) <= 40


@pytest.mark.parametrize(
    ("text", "query", "parts"),
    [
        ("İİİ İade: sipariş 4711 gelmedi", "4711", ("İİİ İade: sipariş ", "4711", " gelmedi")),
        ("Sipariş İstanbul'a gitmedi", "istanbul", ("Sipariş ", "İstanbul", "'a gitmedi")),
        ("Straße İzmir STRASSE", "strasse", ("Straße İzmir ", "STRASSE", "")),
        ("ǅemal İİ ǆ", "ǆ", ("", "ǅ", "emal İİ ǆ")),
    ],
)
def test_the_highlight_is_where_the_match_is_in_the_original_text(text, query, parts):
    found = snippet(text, query)
    assert found is not None
    assert (found.before, found.match, found.after) == parts


def test_the_inbox_marks_the_match_after_dotted_capitals(operator_client, channel):
    started, _ = consented_visitor(channel, text="İİİ İstanbul İade: sipariş 4711 gelmedi")
    page = operator_client.get("/console/inbox/", {"q": "4711"}).text
    assert "İİİ İstanbul İade: sipariş <mark>4711</mark> gelmedi" in page
    assert rows(operator_client, "4711") == [started.conversation.pk]


def test_auditors_cannot_search(auditor_client, chat):
    assert auditor_client.get("/console/inbox/", {"q": "4711"}).status_code == 403


def test_sidebar_shows_client_consent_page_browser_and_past_chats(
    operator_client, channel, operator
):
    first, _ = consented_visitor(channel, text="First visit")
    visitor = first.visitor
    actions.close_conversation(conversation=first.conversation, actor=operator)
    visitor.user_agent = CHROME_MAC
    visitor.language = "de"
    visitor.save(update_fields=["user_agent", "language"])
    second = actions.start_conversation(
        channel=channel, visitor=visitor, page_url="https://shop.example/checkout?step=2"
    )
    actions.receive_message(conversation=second, visitor=visitor, text="Second visit")
    page = operator_client.get(reverse("conversations:conversation", args=[second.pk])).text
    panel = page.split('id="client-panel"')[1].split("</aside>")[0]
    record = first.conversation.consent_records.get()
    assert "Consent given · v1" in panel
    assert f'href="/c/{record.version.public_code}/"' in panel
    assert 'href="https://shop.example/checkout?step=2"' in panel
    assert "Chrome 131 on macOS" in panel and f'title="{CHROME_MAC}"' in panel
    assert '<span class="cp-language">de</span>' in panel
    assert "Website · Live chat" in panel
    assert f'href="/console/inbox/{first.conversation.pk}/"' in panel
    assert 'aria-controls="client-panel"' in page  # the narrow-screen toggle


def test_sidebar_page_url_that_is_not_http_is_shown_as_text(operator_client, channel):
    started, _ = consented_visitor(channel, text="hi", page_url="javascript:alert(1)")
    page = operator_client.get(
        reverse("conversations:conversation", args=[started.conversation.pk])
    ).text
    panel = page.split('id="client-panel"')[1].split("</aside>")[0]
    assert 'href="javascript:' not in panel


@pytest.mark.parametrize(
    ("agent", "summary"),
    [
        (CHROME_MAC, "Chrome 131 on macOS"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari 17 on iOS",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox 133 on Windows",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
            "Edge 131 on Windows",
        ),
        ("curl/8.5.0", "Unknown browser"),
        ("", ""),
    ],
)
def test_user_agent_summary(agent, summary):
    assert summarise_user_agent(agent) == summary
