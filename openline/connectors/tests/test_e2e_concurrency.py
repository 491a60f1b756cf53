"""Concurrent duplicate deliveries to two server processes on PostgreSQL: one of everything.

Every platform retries, and with several web processes the copies of one event can arrive
at the same moment in different processes: the unique intake key, the Connector lock while
processing and the visitor's row lock must still leave one message, one CRM item, one
warning and one consent record per client.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from openline.connectors.models import InboundEvent
from openline.connectors.tests.e2e import (
    FIRST_MESSAGE,
    Messengers,
    first_message,
    next_message,
    start_stack,
    use_fake_platform,
)
from openline.connectors.tests.helpers import SEND_PATHS, eventually
from openline.consent.models import ConsentRecord
from openline.conversations.models import Message, OutboxItem, Visitor
from openline.crm.models import CrmVisitor

pytestmark = pytest.mark.django_db(transaction=True)
COPIES = 6  # copies of each event, sent at once, alternating between the two servers


@pytest.fixture
def two_servers(postgres_only, tmp_path):
    running = start_stack(tmp_path / "var", servers=2)
    yield running
    running.settle()
    running.stop()


def _deliver_at_once(messengers: Messengers, payloads: list[tuple[str, dict]]) -> list[int]:
    servers = messengers.stack.servers
    jobs = [
        (kind, payload, servers[i % len(servers)])
        for kind, payload in payloads
        for i in range(COPIES)
    ]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [
            pool.submit(messengers.send, kind, payload, server=server)
            for kind, payload, server in jobs
        ]
        return [f.result().status_code for f in futures]


def test_concurrent_duplicates_on_two_servers_store_one_of_everything(
    two_servers, channel, administrator, settings
):
    use_fake_platform(settings, two_servers.fake)
    messengers = Messengers(two_servers, channel, administrator)
    kinds = sorted(FIRST_MESSAGE)
    for kind in kinds:
        messengers[kind]  # noqa: B018 - connected before the burst

    statuses = _deliver_at_once(messengers, [(kind, first_message(kind)) for kind in kinds])
    assert set(statuses) == {200}
    for kind in kinds:
        two_servers.fake.wait_for(SEND_PATHS[kind], timeout=60)
    # Only a warning recorded as sent can be confirmed.
    eventually(lambda: OutboxItem.objects.filter(state="sent").count() >= len(kinds), timeout=60)
    statuses = _deliver_at_once(messengers, [(k, next_message(k, "go on")) for k in kinds])
    assert set(statuses) == {200}
    eventually(lambda: ConsentRecord.objects.count() >= len(kinds), timeout=60)
    eventually(lambda: not InboundEvent.objects.filter(state="pending").exists(), timeout=60)

    assert InboundEvent.objects.count() == 2 * len(kinds)
    for kind in kinds:
        visitors = Visitor.objects.filter(origin=kind)
        assert visitors.count() == 1, kind
        visitor = visitors.get()
        assert Message.objects.filter(conversation__visitor=visitor, sender="visitor").count() == 2
        assert CrmVisitor.objects.filter(visitor=visitor).count() == 1
        assert ConsentRecord.objects.filter(visitor=visitor, state="given").count() == 1
        # One warning per client, sent once.
        assert len(two_servers.fake.calls(SEND_PATHS[kind])) == 1, kind
