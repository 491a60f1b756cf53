"""Client names from the CRM: resolved in batches, searched, never for erased clients."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext

from openline.conversations import naming
from openline.conversations.events import conversation_payload
from openline.conversations.models import Conversation, Visitor
from openline.crm import services
from openline.crm.deletion import delete_client_data
from openline.crm.models import CrmItem, CrmVisitor
from openline.crm.tests.conftest import make_chat

pytestmark = pytest.mark.django_db


def saved(operator, conversation, **data):
    return services.save_conversation_to_crm(actor=operator, conversation=conversation, **data).item


def matching(query: str) -> set[int]:
    """Run the lazy subquery of ``naming.visitors_matching`` (as a caller's SQL would)."""
    found = naming.visitors_matching(query)
    assert isinstance(found, QuerySet)
    return set(found)


@contextmanager
def sql_params():
    """Collect the parameters of every SQL statement run inside the block."""
    seen: list[tuple] = []

    def wrapper(execute, sql, params, many, context):
        seen.append(tuple(params or ()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield seen


def test_resolver_names_a_saved_client_with_email_phone_and_item_url(operator, chat):
    item = saved(operator, chat, name="Jane Doe", email="jane@example.com", phone="+49 30 1234-567")

    known = naming.client_names([chat.visitor_id])[chat.visitor_id]

    assert known.name == "Jane Doe"
    assert known.email == "jane@example.com" and known.phone == "+49 30 1234-567"
    assert known.crm_item_id == item.pk and known.crm_url == f"/console/crm/items/{item.pk}/"
    assert naming.label(chat.visitor, known) == "Jane Doe"


def test_unknown_visitors_are_left_out(channel):
    stranger = make_chat(channel)
    assert naming.client_names([stranger.visitor_id, 999_999]) == {}
    assert naming.label(stranger.visitor, None).startswith("Visitor ")


def test_a_batch_costs_two_queries_however_many_visitors(operator, channel):
    chats = [make_chat(channel) for _ in range(30)]
    for i, chat in enumerate(chats):
        saved(operator, chat, name=f"Client {i}", email=f"c{i}@example.com")

    with CaptureQueriesContext(connection) as queries:
        names = naming.client_names([c.visitor_id for c in chats])

    assert len(names) == 30 and names[chats[7].visitor_id].name == "Client 7"
    assert len(queries) <= 2


@pytest.mark.parametrize(
    "query",
    ["jane", "JANE DOE", "jane@example", "+49 30 1234567", "030 1234-567", "1234567"],
)
def test_searcher_finds_by_name_email_and_phone_digits(operator, channel, query):
    jane = make_chat(channel)
    other = make_chat(channel)
    saved(operator, jane, name="Jane Doe", email="jane@example.com", phone="+49 30 1234-567")
    saved(operator, other, name="Max Muster", email="max@example.org")

    assert matching(query) == {jane.visitor_id}


def test_searcher_finds_a_messenger_profile_name(channel):
    ivan = make_chat(channel, name="Ivan Petrov", origin="telegram", external_id="1001")
    assert matching("petrov") == {ivan.visitor_id}
    assert matching("nobody like this") == set()
    assert matching("   ") == set()


@pytest.mark.parametrize("query", ["J", "j", "@", "1", "4", "12", "123", "+49", "30 1"])
def test_too_short_a_query_matches_nobody(operator, channel, query):
    jane = make_chat(channel, name="Jo", phone="+49 30 1234567")
    saved(operator, jane, name="Jane Doe", email="j@example.com", phone="+49 30 1234-567")
    make_chat(channel, name="J", email="1@example.org", phone="1234")

    assert matching(query) == set()


@pytest.mark.parametrize("query", ["Ja", "Jo", "j@", "1234", "+49 3012", "0301234", "30 1234"])
def test_two_letters_or_four_digits_are_enough(operator, channel, query):
    jane = make_chat(channel, name="Jo", phone="+49 30 1234567")
    saved(operator, jane, name="Jane Doe", email="j@example.com", phone="+49 30 1234-567")
    other = make_chat(channel)
    saved(operator, other, name="Max Muster", email="max@example.org", phone="+43 1 9876543")

    assert matching(query) == {jane.visitor_id}


def test_a_search_matching_thousands_of_visitors_is_one_subquery_with_few_params(operator, channel):
    # 1,000 CRM clients called "Anna …" and 1,000 messenger profiles called "Anna …".
    visitors = Visitor.objects.bulk_create(
        Visitor(origin="livechat", channel=channel, name="Anna Profile" if i % 2 else "")
        for i in range(2000)
    )
    items = CrmItem.objects.bulk_create(
        CrmItem(name=f"Anna Client {i}", source_channel=channel) for i in range(1000)
    )
    CrmVisitor.objects.bulk_create(
        CrmVisitor(item=item, visitor=visitor)
        for item, visitor in zip(items, visitors[0::2], strict=True)
    )
    everybody = {v.pk for v in visitors}

    found = naming.visitors_matching("anna")
    with CaptureQueriesContext(connection) as queries, sql_params() as params:
        rows = list(Conversation.objects.filter(visitor_id__in=found).values_list("pk"))
        ids = set(found)

    assert rows == [] and ids == everybody
    assert len(queries) == 2
    # The ids stay in the database: a handful of parameters, a short statement.
    assert max(len(p) for p in params) <= 20, params
    assert all(len(q["sql"]) < 4000 for q in queries)
    assert "IN (SELECT" in queries[0]["sql"].upper()


def test_erased_clients_never_get_a_name_nor_match(operator, administrator, chat):
    item = saved(operator, chat, name="Jane Doe", email="jane@example.com")
    visitor_id = chat.visitor_id
    assert matching("Jane") == {visitor_id}

    delete_client_data(actor=administrator, item_id=item.pk)

    assert naming.client_names([visitor_id]) == {}
    assert matching("Jane") == set()
    assert matching("jane@example.com") == set()
    conversation = Conversation.objects.select_related("visitor", "channel").get(pk=chat.pk)
    payload = conversation_payload(conversation)
    assert payload["visitor"].startswith("Deleted client ")
    assert "Jane" not in str(payload)


def test_an_erased_visitor_is_never_named_even_if_a_stale_name_is_passed(administrator, chat):
    from openline.conversations.erasure import erase_visitor

    erase_visitor(actor=administrator, visitor=chat.visitor)
    chat.visitor.refresh_from_db()
    stale = naming.ClientName(name="Jane Doe")
    assert naming.label(chat.visitor, stale).startswith("Deleted client ")


def test_payload_shows_the_crm_name_and_keeps_the_pseudonym(operator, chat):
    pseudonym = str(chat.visitor)
    saved(operator, chat, name="Jane Q. Public")
    conversation = Conversation.objects.select_related("visitor", "channel").get(pk=chat.pk)

    resolved = conversation_payload(conversation)
    passed = conversation_payload(
        conversation, known=naming.client_names([chat.visitor_id]).get(chat.visitor_id)
    )
    unknown = conversation_payload(conversation, known=None)

    assert resolved["visitor"] == passed["visitor"] == "Jane Q. Public"
    assert resolved["visitor_pseudonym"] == pseudonym
    # A caller that resolved a page and found nobody gets the pseudonym, without a lookup.
    assert unknown["visitor"] == pseudonym


def test_awaiting_list_and_item_page_name_the_client_alike(operator, operator_client, channel):
    from django.utils import timezone

    from openline.crm.models import CrmItem, CrmVisitor

    chat = make_chat(channel, name="Ivan Petrov", origin="telegram", external_id="1001")
    visitor = chat.visitor
    visitor.awaiting_consent_since = timezone.now()
    visitor.save(update_fields=["awaiting_consent_since"])
    item = CrmItem.objects.create(source_channel=channel)
    CrmVisitor.objects.create(item=item, visitor=visitor)

    def heading() -> str:
        page = operator_client.get(f"/console/crm/items/{item.pk}/").text
        return page.split("<h1>", 1)[1].split("</h1>", 1)[0]

    awaiting = operator_client.get("/console/crm/awaiting/").text
    assert f'<a href="/console/crm/items/{item.pk}/"><strong>Ivan Petrov</strong></a>' in awaiting
    assert heading() == "Ivan Petrov"

    item.name = "Ivan P. (ACME)"
    item.save()
    awaiting = operator_client.get("/console/crm/awaiting/").text
    assert "<strong>Ivan P. (ACME)</strong>" in awaiting and "Ivan Petrov" in awaiting
    assert heading() == "Ivan P. (ACME)"
