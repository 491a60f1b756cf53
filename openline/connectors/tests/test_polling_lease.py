"""The poller lease: one owner at a time, taken over only when expired or released."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from openline.connectors import polling
from openline.connectors.tests.helpers import answer_platform_apis, connect
from openline.openchannels.models import Connector


def test_one_owner_at_a_time_until_the_lease_expires_or_is_released(
    channel, fake_platform, administrator
):
    answer_platform_apis(fake_platform)
    bot = connect(
        channel, "telegram", base="http://testserver", actor=administrator, mode="polling"
    )
    first, second = polling.new_owner(), polling.new_owner()
    assert first != second
    assert list(polling.polling_connectors()) == [bot]

    assert polling.acquire(connector_id=bot.pk, owner=first, lease_seconds=30)
    assert not polling.acquire(connector_id=bot.pk, owner=second, lease_seconds=30)
    assert polling.acquire(connector_id=bot.pk, owner=first, lease_seconds=30)  # renewal

    # The owner died without releasing: the lease runs out, then another takes it.
    Connector.objects.filter(pk=bot.pk).update(
        poller_lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert polling.acquire(connector_id=bot.pk, owner=second, lease_seconds=30)
    assert not polling.acquire(connector_id=bot.pk, owner=first, lease_seconds=30)

    polling.release(connector_id=bot.pk, owner=first)  # not the owner: changes nothing
    assert Connector.objects.get(pk=bot.pk).poller_owner == second
    polling.release(connector_id=bot.pk, owner=second)
    assert polling.acquire(connector_id=bot.pk, owner=first, lease_seconds=30)


def test_a_webhook_bot_is_never_polled(channel, fake_platform, administrator):
    answer_platform_apis(fake_platform)
    bot = connect(channel, "telegram", base="http://testserver", actor=administrator)
    assert not polling.polling_connectors().exists()
    assert not polling.acquire(connector_id=bot.pk, owner=polling.new_owner(), lease_seconds=30)
