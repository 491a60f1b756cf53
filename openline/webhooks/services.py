"""Managing webhook endpoints (administrators only; views and the API both call these)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from openline.webhooks import signing
from openline.webhooks.events import EVENT_TYPES
from openline.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint


def _clean_events(events) -> list[str]:
    return [e for e in EVENT_TYPES if e in set(events or [])]


@transaction.atomic
def create_endpoint(
    *, actor, url: str, events, description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; return it and its new secret (shown once, stored encrypted)."""
    secret = signing.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        description=description,
        events=_clean_events(events),
        secret_encrypted=signing.seal(secret),
        created_by=actor,
    )
    return endpoint, secret


@transaction.atomic
def update_endpoint(
    *, endpoint: WebhookEndpoint, url: str, events, description: str = ""
) -> WebhookEndpoint:
    endpoint.url = url
    endpoint.events = _clean_events(events)
    endpoint.description = description
    endpoint.save(update_fields=["url", "events", "description", "updated_at"])
    return endpoint


@transaction.atomic
def rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """Replace the signing secret; the next attempts are signed with the new one."""
    secret = signing.new_secret()
    endpoint.secret_encrypted = signing.seal(secret)
    endpoint.save(update_fields=["secret_encrypted", "updated_at"])
    return secret


@transaction.atomic
def set_active(*, endpoint: WebhookEndpoint, active: bool) -> WebhookEndpoint:
    """Disable or enable; enabling resumes the deliveries kept while it was disabled."""
    endpoint.is_active = active
    if active:
        endpoint.disabled_at = None
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
        # Kept deliveries are due at once (their back-off was about the old failures).
        WebhookDelivery.objects.filter(endpoint=endpoint, state=DeliveryState.PENDING).update(
            next_attempt_at=timezone.now()
        )
        transaction.on_commit(_kick)
    else:
        endpoint.disabled_at = timezone.now()
        endpoint.disabled_reason = "Disabled by an administrator."
    endpoint.save(
        update_fields=["is_active", "disabled_at", "disabled_reason", "failing_since", "updated_at"]
    )
    return endpoint


def _kick() -> None:
    from openline.webhooks.tasks import kick

    kick()


def delete_endpoint(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and attempts (events of other endpoints stay)."""
    endpoint.delete()


def reencrypt_secrets() -> int:
    """Re-encrypt every endpoint's signing secret with the newest key (``secrets_rotate``)."""
    from openline.core import secrets

    rotated = 0
    for pk in WebhookEndpoint.objects.values_list("pk", flat=True):
        with transaction.atomic():
            endpoint = WebhookEndpoint.objects.select_for_update().get(pk=pk)
            endpoint.secret_encrypted = secrets.rotate_token(endpoint.secret_encrypted)
            endpoint.save(update_fields=["secret_encrypted"])
            rotated += 1
    return rotated
