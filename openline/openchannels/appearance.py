"""The write path of a channel's live chat appearance and working hours, audited."""

from __future__ import annotations

import logging

from django.db import transaction

from openline.accounts.models import User
from openline.openchannels import hours
from openline.openchannels.models import OpenChannel

audit_log = logging.getLogger("openline.audit.openchannels")

FIELDS = (
    "display_name",
    "color",
    "greeting",
    "launcher_position",
    "hours_enabled",
    "hours_timezone",
    "working_hours",
    "offline_message",
)


def appearance_settings(channel: OpenChannel) -> dict:
    """Return the channel's appearance and hours as plain data, for audit."""
    return {name: getattr(channel, name) for name in FIELDS}


@transaction.atomic
def update_appearance(*, actor: User, channel: OpenChannel, **values) -> OpenChannel:
    """Change how the channel's chat looks and when it is open; log who changed what."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TypeError(f"Unknown appearance settings: {', '.join(sorted(unknown))}")
    channel = OpenChannel.objects.select_for_update().get(pk=channel.pk)
    before = appearance_settings(channel)
    for name, value in values.items():
        setattr(channel, name, value)
    if "hours_timezone" in values:
        hours.validate_timezone(channel.hours_timezone)
    channel.working_hours = hours.clean_week(channel.working_hours)
    channel.full_clean()
    after = appearance_settings(channel)
    changed = sorted(name for name in FIELDS if before[name] != after[name])
    if changed:
        channel.save(update_fields=[*changed, "updated_at"])
        audit_log.info(
            "channel %s appearance changed by %s: %s",
            channel.pk,
            actor.get_username(),
            {name: {"before": before[name], "after": after[name]} for name in changed},
        )
    return channel
