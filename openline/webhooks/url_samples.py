"""Objects that reach the webhook console URLs, for the role matrix test."""

from __future__ import annotations


def url_samples(*, administrator, **_) -> dict[str, dict]:
    from django.utils import timezone

    from openline.webhooks import services
    from openline.webhooks.models import WebhookDelivery, WebhookEvent
    from openline.webhooks.outbox import message_id

    # Port 9 (discard) on loopback: a Resend fails at once, without leaving the machine.
    endpoint, _secret = services.create_endpoint(
        actor=administrator, url="http://127.0.0.1:9/hooks", events=["consent.given"]
    )
    now = timezone.now()
    event = WebhookEvent.objects.create(
        type="consent.given",
        payload={"type": "consent.given", "timestamp": now.isoformat(), "data": {}},
        created_at=now,
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event=event,
        message_id=message_id(event.uuid, endpoint.pk),
        next_attempt_at=now,
        created_at=now,
    )
    kwargs: dict = {"pk": endpoint.pk}
    return {
        "webhooks:endpoint": kwargs,
        "webhooks:endpoint_edit": kwargs,
        "webhooks:endpoint_rotate": kwargs,
        "webhooks:endpoint_toggle": kwargs,
        "webhooks:endpoint_delete": kwargs,
        "webhooks:delivery_resend": {"pk": delivery.pk},
    }
