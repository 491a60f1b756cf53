"""CRM names in the operator inbox: the page in a fixed number of queries, and live events."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from openline.conversations import actions
from openline.crm import services
from openline.crm.tests.conftest import make_chat
from openline.livechat.tests.helpers import WsClient, consented_visitor, run_async


def _page_queries(client: Client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response.text


@pytest.mark.django_db
def test_the_inbox_names_100_clients_without_a_query_per_row(operator, operator_client, channel):
    chats = [make_chat(channel, texts=[f"question {i}"]) for i in range(100)]
    few, _ = _page_queries(operator_client, "/console/inbox/")
    for i, chat in enumerate(chats):
        services.save_conversation_to_crm(
            actor=operator, conversation=chat, name=f"Client Nr {i:03}", phone=f"+4930{i:07}"
        )

    many, html = _page_queries(operator_client, "/console/inbox/")

    assert "Client Nr 000" in html and "Client Nr 099" in html
    # Naming a hundred rows costs the same couple of queries as naming none.
    assert many <= few + 2, f"{many} queries with names, {few} without"
    searched, found = _page_queries(operator_client, "/console/inbox/?q=%2B4930%200000042")
    assert "Client Nr 042" in found and "Client Nr 041" not in found
    assert searched <= few + 6
    # A name all hundred share: the CRM's matches are a subquery of the inbox's own query,
    # not a list of a hundred ids fetched first.
    with CaptureQueriesContext(connection) as queries:
        everyone = operator_client.get("/console/inbox/", {"q": "Client Nr"})
    assert "Client Nr 000" in everyone.text and "Client Nr 099" in everyone.text
    searching = [q["sql"] for q in queries if "crm_crmitem" in q["sql"] and "LIKE" in q["sql"]]
    assert searching and all('FROM "conversations_conversation"' in sql for sql in searching)


async def _operator_ws(live_asgi, user):
    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    ws = await WsClient.open(live_asgi, "/ws/console/", headers={"Cookie": cookie})
    while (await ws.receive_json_from())["type"] != "ready":
        pass
    return ws


async def _next_of(ws, kind):
    while True:
        frame = await ws.receive_json_from()
        if frame["type"] == kind:
            return frame


@pytest.mark.django_db(transaction=True)
def test_live_events_carry_the_crm_name_to_the_channels_operators_only(
    live_asgi, operator, other_operator, channel
):
    run_async(
        lambda: _live_events_carry_the_crm_name(
            live_asgi=live_asgi, operator=operator, other_operator=other_operator, channel=channel
        )
    )


async def _live_events_carry_the_crm_name(live_asgi, operator, other_operator, channel):
    started, _ = await sync_to_async(consented_visitor)(channel, text="Hello")
    chat = started.conversation
    pseudonym = str(chat.visitor)
    await sync_to_async(services.save_conversation_to_crm)(
        actor=operator, conversation=chat, name="Jane Doe", email="jane@example.com"
    )
    ws = await _operator_ws(live_asgi, operator)
    stranger = await _operator_ws(live_asgi, other_operator)

    await sync_to_async(actions.receive_message)(
        conversation=chat, visitor=chat.visitor, text="Any news?"
    )
    event = await _next_of(ws, "message")
    assert event["conversation"]["visitor"] == "Jane Doe"
    assert event["conversation"]["visitor_pseudonym"] == pseudonym
    await ws.send_json_to(
        {"type": "reply", "conversation": chat.pk, "text": "Soon!", "client_id": "r1"}
    )
    reply = await _next_of(ws, "message")
    assert reply["message"]["text"] == "Soon!" and reply["conversation"]["visitor"] == "Jane Doe"
    # An operator of another channel hears nothing of this client, name or not.
    assert await stranger.receive_nothing(0.5)
    assert all("Jane" not in str(frame) for frame in stranger.received)
    await ws.disconnect()
    await stranger.disconnect()
