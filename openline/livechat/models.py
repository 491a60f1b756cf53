"""What the live chat keeps of its own: the idempotency keys of chat starts."""

from __future__ import annotations

import datetime as dt

from django.db import models

# How long a start's Idempotency-Key is honoured (and kept); the hourly retention job purges older.
KEY_LIFETIME = dt.timedelta(hours=24)


class StartKey(models.Model):
    """An ``Idempotency-Key`` of a widget chat start and what it created, to answer a retry again.

    Written in the start's own transaction, so a key exists exactly when its capture committed,
    whichever process answered it. Plain ids, not foreign keys: the row only says what to load
    again; erasing a client's data is not held up by it.
    """

    channel = models.ForeignKey(
        "openchannels.OpenChannel", on_delete=models.CASCADE, related_name="+"
    )
    key = models.CharField(max_length=64)
    # SHA-256 of the request body: the same key with another body is refused, not replayed.
    body_sha256 = models.CharField(max_length=64)
    visitor_public_id = models.UUIDField()
    conversation_pk = models.BigIntegerField()
    message_pk = models.BigIntegerField()
    record_uuid = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "key"], name="livechat_startkey_channel_key")
        ]

    def __str__(self) -> str:
        return f"start key {self.key[:8]}… on channel {self.channel_id}"
