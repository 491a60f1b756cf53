"""Telegram long polling: two ``messengers_run`` processes, exactly one getUpdates at a time.

The fake Telegram holds every getUpdates call open for a while (a long poll) and counts how
many are open at once; a second concurrent call is refused with 409 like Telegram does.
"""

from __future__ import annotations

import threading
import time

import pytest

from openline.connectors.models import InboundEvent
from openline.connectors.tests.e2e import start_stack, use_fake_platform
from openline.connectors.tests.helpers import connect, eventually
from openline.openchannels.models import Connector
from openline.testing.fake_platforms import Answer, Recorded, fixture

pytestmark = pytest.mark.django_db(transaction=True)

UPDATES = fixture("telegram_get_updates_response.json")
NEXT_OFFSET = max(u["update_id"] for u in UPDATES["result"]) + 1


class LongPolls:
    """The fake getUpdates: one batch of updates, then empty long polls; counts overlap."""

    def __init__(self, hold: float = 0.4) -> None:
        self.hold = hold
        self.lock = threading.Lock()
        self.open = 0
        self.most_open = 0
        self.conflicts = 0
        self.calls = 0
        self.offsets: list[int] = []

    def __call__(self, request: Recorded) -> Answer:
        offset = int((request.json() or {}).get("offset") or 0)
        with self.lock:
            self.calls += 1
            self.offsets.append(offset)
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            overlapping = self.open > 1
            if overlapping:
                self.conflicts += 1
        try:
            if overlapping:
                return Answer(
                    409,
                    {
                        "ok": False,
                        "error_code": 409,
                        "description": "Conflict: terminated by other getUpdates request",
                    },
                )
            time.sleep(self.hold)
            if offset < NEXT_OFFSET:
                return Answer(body=UPDATES)
            return Answer(body={"ok": True, "result": []})
        finally:
            with self.lock:
                self.open -= 1


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        running = start_stack(tmp_path_factory.mktemp("var"))
    yield running
    running.stop()


def test_two_runners_poll_one_bot_one_at_a_time_and_hand_over(
    stack, channel, administrator, settings
):
    use_fake_platform(settings, stack.fake)
    polls = LongPolls()
    stack.fake.route("POST", r"/bot[^/]+/getUpdates", polls)
    connector = connect(
        channel, "telegram", base=stack.server.url, actor=administrator, mode="polling"
    )
    assert connector.mode == "polling"
    runners = [
        stack.start_worker("messengers_run", "--interval", "0.2", "--poll-timeout", "1")
        for _ in range(2)
    ]
    try:
        # Generous: two fresh processes start (Django setup) before the first poll.
        eventually(
            lambda: Connector.objects.get(pk=connector.pk).poll_offset == NEXT_OFFSET, timeout=90
        )
        keys = sorted(InboundEvent.objects.values_list("event_key", flat=True))
        # Keys are scoped to the bot when its id is known (switching bots loses nothing).
        bot_id = str(Connector.objects.get(pk=connector.pk).config.get("bot_id") or "")
        prefix = f"{bot_id}:" if bot_id else ""
        assert keys == sorted(f"{prefix}{u['update_id']}" for u in UPDATES["result"])
        eventually(lambda: not InboundEvent.objects.filter(state="pending").exists())
        eventually(lambda: polls.calls >= 4)

        owner = Connector.objects.get(pk=connector.pk).poller_owner
        holder = next(r for r in runners if f":{r.process.pid}:" in owner)
        other = next(r for r in runners if r is not holder)
        holder.stop()  # a clean exit releases the lease at once
        calls_before = polls.calls

        def taken_over():
            """the other runner holds the lease and polls"""
            now_owner = Connector.objects.get(pk=connector.pk).poller_owner
            return f":{other.process.pid}:" in now_owner and polls.calls >= calls_before + 2

        eventually(taken_over, timeout=60)
        # Never two long polls at once, never a conflict, and never an update fetched twice.
        assert polls.most_open == 1
        assert polls.conflicts == 0
        assert polls.offsets.count(0) == 1
        assert set(polls.offsets) == {0, NEXT_OFFSET}
        assert InboundEvent.objects.count() == len(UPDATES["result"])
    finally:
        for runner in runners:
            runner.stop()
        stack.workers = [w for w in stack.workers if w not in runners]
        stack.settle()
