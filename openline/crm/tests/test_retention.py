"""The retention job deletes clients who never confirmed consent, per channel, when enabled."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.core.management import call_command
from django.utils import timezone

from openline.conversations.models import Visitor
from openline.crm.awaiting import purge_unconfirmed
from openline.crm.models import CrmErasure, CrmItem
from openline.crm.tasks import purge_unconfirmed_task
from openline.crm.tests.messenger_helpers import awaiting_client
from openline.openchannels.models import OpenChannel
from openline.openchannels.services import create_open_channel

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def keep_for(channel, days):
    # Test setup: the settings page writes this through update_consent_settings.
    OpenChannel.objects.filter(pk=channel.pk).update(unconfirmed_retention_days=days)


@pytest.fixture
def second(administrator):
    return create_open_channel(actor=administrator, name="Second bot")


def test_deletes_only_clients_past_the_channel_limit(channel, second, caplog):
    keep_for(channel, 7)
    old = awaiting_client(channel, external_id="1", name="Olga Oldtimer", since=days_ago(8))
    fresh = awaiting_client(channel, external_id="2", name="Fred Fresh", since=days_ago(6))
    # Retention is off on the second channel: nothing there is ever deleted by the job.
    forever = awaiting_client(second, external_id="3", name="Fiona Forever", since=days_ago(400))

    with caplog.at_level(logging.INFO, logger="openline.crm"):
        assert purge_unconfirmed(now=NOW) == 1

    old.refresh_from_db()
    assert old.erased_at is not None and old.awaiting_consent_since is None
    assert Visitor.objects.get(pk=fresh.pk).erased_at is None
    assert Visitor.objects.get(pk=forever.pk).erased_at is None
    assert CrmItem.objects.count() == 2
    erasure = CrmErasure.objects.get()
    assert erasure.actor is None and erasure.actor_label == "Openline"
    assert erasure.visitor_public_ids == [str(old.public_id)]

    # The log says what went, by channel and pseudonymous id, and holds no personal data.
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert str(old.public_id) in text and f"channel {channel.pk}" in text
    for secret in ("Olga", "Oldtimer", "Fred", "Fiona", "Hello", "delivery", "telegram:1"):
        assert secret not in text


def test_off_by_default(channel):
    assert channel.unconfirmed_retention_days is None
    ancient = awaiting_client(channel, since=days_ago(3650))
    assert purge_unconfirmed(now=NOW) == 0
    assert Visitor.objects.get(pk=ancient.pk).erased_at is None


def test_confirmed_and_live_chat_clients_are_never_purged(channel):
    keep_for(channel, 1)
    confirmed = awaiting_client(channel, external_id="1", since=days_ago(30))
    Visitor.objects.filter(pk=confirmed.pk).update(awaiting_consent_since=None)
    web = Visitor.objects.create(origin="livechat", channel=channel, name="Web")

    assert purge_unconfirmed(now=NOW) == 0
    assert Visitor.objects.get(pk=confirmed.pk).erased_at is None
    assert Visitor.objects.get(pk=web.pk).erased_at is None


def test_runs_as_a_task_and_a_command(channel, settings):
    keep_for(channel, 2)
    a = awaiting_client(channel, external_id="1", since=timezone.now() - dt.timedelta(days=3))
    b = awaiting_client(channel, external_id="2", since=timezone.now() - dt.timedelta(days=3))

    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    result = purge_unconfirmed_task.enqueue()
    assert result.return_value == {"deleted": 2}
    assert Visitor.objects.filter(pk__in=[a.pk, b.pk], erased_at__isnull=False).count() == 2

    c = awaiting_client(channel, external_id="3", since=timezone.now() - dt.timedelta(days=3))
    call_command("crm_purge_unconfirmed")
    assert Visitor.objects.get(pk=c.pk).erased_at is not None
