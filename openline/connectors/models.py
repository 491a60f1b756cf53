"""Raw messenger events as received: the durable, exactly-once intake of every webhook."""

from __future__ import annotations

from django.db import models


class InboundEventState(models.TextChoices):
    PENDING = "pending", "Waiting"
    DONE = "done", "Processed"
    FAILED = "failed", "Failed"
    IGNORED = "ignored", "Acknowledged, nothing to do"


class InboundEvent(models.Model):
    """One platform event, stored before the webhook answers; unique by the platform's id.

    Several processes may receive the same delivery at once: the unique constraint, not a
    cache, decides which one stores it. Processing happens later, in a background task.
    """

    id = models.BigAutoField(primary_key=True)
    connector = models.ForeignKey(
        "openchannels.Connector", on_delete=models.CASCADE, related_name="inbound_events"
    )
    # Telegram update_id, WhatsApp message id (or status id + status), Messenger mid, Viber
    # message_token (+ event) — whatever the platform repeats on a retried delivery.
    event_key = models.CharField(max_length=160)
    # The typed event (connectors.base) as JSON, not the raw platform payload.
    event = models.JSONField()
    state = models.CharField(
        max_length=10, choices=InboundEventState.choices, default=InboundEventState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["connector", "event_key"], name="inbound_event_once")
        ]
        indexes = [models.Index(fields=["state", "id"], name="inbound_pending")]

    def __str__(self) -> str:
        return f"{self.connector_id}:{self.event_key} ({self.state})"
