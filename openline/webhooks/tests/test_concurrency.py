"""Several workers deliver at once (PostgreSQL, SKIP LOCKED): each event arrives exactly once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from django.db import connection

from openline.conversations.actions import (
    create_visitor,
    receive_message,
    start_conversation,
)
from openline.webhooks import services
from openline.webhooks.delivery import deliver_due
from openline.webhooks.models import DeliveryState, WebhookDelivery
from openline.webhooks.tests.receiver import Receiver


def _worker() -> int:
    try:
        done = 0
        for _ in range(20):
            done += deliver_due(limit=50)
        return done
    finally:
        connection.close()


def test_four_workers_send_each_event_once_and_in_order(
    postgres_only, transactional_db, administrator, channel
):
    with Receiver() as receiver:
        services.create_endpoint(
            actor=administrator,
            url=receiver.url,
            events=["conversation.started", "message.received"],
        )
        chats = []
        for _ in range(5):
            visitor = create_visitor(channel=channel, origin="livechat")
            conversation = start_conversation(channel=channel, visitor=visitor)
            for i in range(6):
                receive_message(conversation=conversation, visitor=visitor, text=f"m{i}")
            chats.append(conversation.pk)
        with ThreadPoolExecutor(max_workers=4) as pool:
            attempted = sum(pool.map(lambda _: _worker(), range(4)))
    ids = Counter(headers["webhook-id"] for headers, _ in receiver.accepted())
    assert len(ids) == 35 and set(ids.values()) == {1}
    assert attempted == 35
    assert not WebhookDelivery.objects.exclude(state=DeliveryState.DELIVERED).exists()
    events = receiver.accepted_events()
    for pk in chats:
        texts = [
            e["data"].get("text", "start") for e in events if e["data"]["conversation_id"] == pk
        ]
        assert texts == ["start", "m0", "m1", "m2", "m3", "m4", "m5"]
