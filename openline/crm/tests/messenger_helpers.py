"""Builders for messenger clients awaiting consent (test setup, rows created directly)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from openline.conversations.models import Conversation, Message, Visitor
from openline.crm.messenger import ensure_client_item


def awaiting_client(
    channel,
    *,
    external_id="111222333",
    origin="telegram",
    name="Ivan Petrov",
    phone="",
    since=None,
    texts=("Hello", "How much is delivery?"),
    with_item=True,
):
    """A messenger client who got the warning ``since`` ago-ish and wrote ``texts``."""
    visitor = Visitor.objects.create(
        origin=origin,
        channel=channel,
        external_id=external_id,
        name=name,
        phone=phone,
        language="en",
        awaiting_consent_since=since or timezone.now() - dt.timedelta(hours=1),
    )
    conversation = Conversation.objects.create(channel=channel, visitor=visitor, origin=origin)
    for i, text in enumerate(texts):
        Message.objects.create(
            conversation=conversation, sender="visitor", text=text, external_id=f"{external_id}-{i}"
        )
    if with_item:
        ensure_client_item(channel=channel, visitor=visitor)
    return visitor
