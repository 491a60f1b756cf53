from __future__ import annotations

from django.utils import timezone

from openline.webhooks.delivery import deliver_due
from openline.webhooks.models import DeliveryState, WebhookDelivery


def time_passes() -> None:
    """Make every back-off wait over (simulating the passing of time)."""
    WebhookDelivery.objects.filter(state=DeliveryState.PENDING).update(
        next_attempt_at=timezone.now()
    )


def deliver_all(rounds: int = 10) -> None:
    """Run the worker until nothing is pending (back-offs skipped), at most ``rounds`` times."""
    for _ in range(rounds):
        deliver_due(limit=500)
        if not WebhookDelivery.objects.exclude(state=DeliveryState.DELIVERED).exists():
            return
        time_passes()
