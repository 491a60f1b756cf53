"""API for webhook endpoints and their deliveries (administrators, like the console)."""

from __future__ import annotations

import datetime as dt
from typing import Literal, cast

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.responses import Status

from openline.accounts.models import Role, User
from openline.accounts.permissions import has_role
from openline.core.api_errors import errors
from openline.webhooks import delivery as sending
from openline.webhooks import services
from openline.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

router = Router(tags=["Webhooks"])

MAX_ID = 2**63 - 1
EventType = Literal[
    "consent.given",
    "consent.withdrawn",
    "conversation.started",
    "conversation.closed",
    "message.received",
    "message.sent",
    "crm.item.created",
    "crm.item.deleted",
    "registry.checkpoint",
]
_url = URLValidator(schemes=["http", "https"])


def _require(request: HttpRequest) -> User:
    if not has_role(request.user, Role.ADMINISTRATOR):
        raise HttpError(403, "Only administrators manage webhooks.")
    return cast(User, request.user)


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    found = (
        WebhookEndpoint.objects.filter(pk=endpoint_id).first()
        if 0 < endpoint_id <= MAX_ID
        else None
    )
    if found is None:
        raise HttpError(404, "No such webhook endpoint.")
    return found


def _check_url(url: str) -> str:
    url = url.strip()
    try:
        _url(url)
    except ValidationError:
        raise HttpError(422, "url: Enter an http or https URL.") from None
    return url


class EndpointOut(Schema):
    id: int
    url: str
    description: str
    events: list[str]
    is_active: bool
    disabled_at: dt.datetime | None
    disabled_reason: str
    failing_since: dt.datetime | None
    created_at: dt.datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="The signing secret (whsec_...): returned once, never again.")


class SecretOut(Schema):
    secret: str = Field(description="The new signing secret: returned once, never again.")


def _out(endpoint: WebhookEndpoint) -> dict:
    return {
        "id": endpoint.pk,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.events or []),
        "is_active": endpoint.is_active,
        "disabled_at": endpoint.disabled_at,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since,
        "created_at": endpoint.created_at,
    }


class EndpointIn(Schema):
    url: str = Field(max_length=500, description="http or https URL events are POSTed to")
    description: str = Field("", max_length=200)
    events: list[EventType] = Field(min_length=1, max_length=20)


class EndpointPatch(Schema):
    url: str | None = Field(None, max_length=500)
    description: str | None = Field(None, max_length=200)
    events: list[EventType] | None = Field(None, min_length=1, max_length=20)
    is_active: bool | None = None


@router.get("", response={200: list[EndpointOut], **errors(401, 403)}, summary="List endpoints")
def list_endpoints(request: HttpRequest):
    _require(request)
    return [_out(e) for e in WebhookEndpoint.objects.order_by("id")]


@router.post(
    "",
    response={201: EndpointCreated, **errors(401, 403, 422)},
    summary="Register an endpoint (its signing secret is returned once)",
)
def create_endpoint(request: HttpRequest, payload: EndpointIn):
    user = _require(request)
    url = _check_url(payload.url)
    endpoint, secret = services.create_endpoint(
        actor=user, url=url, events=payload.events, description=payload.description
    )
    return Status(201, {**_out(endpoint), "secret": secret})


@router.get(
    "/{endpoint_id}",
    response={200: EndpointOut, **errors(401, 403, 404)},
    summary="Get an endpoint",
)
def get_endpoint(request: HttpRequest, endpoint_id: int):
    _require(request)
    return _out(_endpoint(endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response={200: EndpointOut, **errors(401, 403, 404, 422)},
    summary="Change an endpoint, or disable / enable it",
)
def update_endpoint(request: HttpRequest, endpoint_id: int, payload: EndpointPatch):
    _require(request)
    endpoint = _endpoint(endpoint_id)
    if payload.url is not None or payload.description is not None or payload.events is not None:
        services.update_endpoint(
            endpoint=endpoint,
            url=_check_url(payload.url) if payload.url is not None else endpoint.url,
            events=payload.events if payload.events is not None else endpoint.events,
            description=(
                payload.description if payload.description is not None else endpoint.description
            ),
        )
    if payload.is_active is not None and payload.is_active != endpoint.is_active:
        services.set_active(endpoint=endpoint, active=payload.is_active)
    return _out(_endpoint(endpoint_id))


@router.delete(
    "/{endpoint_id}",
    response={204: None, **errors(401, 403, 404)},
    summary="Delete an endpoint with its deliveries",
)
def delete_endpoint(request: HttpRequest, endpoint_id: int):
    _require(request)
    services.delete_endpoint(endpoint=_endpoint(endpoint_id))
    return Status(204, None)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response={200: SecretOut, **errors(401, 403, 404)},
    summary="Replace the signing secret (returned once)",
)
def rotate_secret(request: HttpRequest, endpoint_id: int):
    _require(request)
    return {"secret": services.rotate_secret(endpoint=_endpoint(endpoint_id))}


class AttemptOut(Schema):
    started_at: dt.datetime
    status_code: int | None
    duration_ms: int
    error: str
    next_retry_at: dt.datetime | None
    manual: bool


class DeliveryOut(Schema):
    id: int
    message_id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    event_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_status_code: int | None
    last_error: str
    created_at: dt.datetime
    attempt_log: list[AttemptOut]


class DeliveryPage(Schema):
    items: list[DeliveryOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class DeliveryFilters(Schema):
    state: Literal["pending", "sending", "delivered"] | None = None
    before: int | None = Field(
        None, ge=1, le=MAX_ID, description="Only deliveries older than this id"
    )
    limit: int = Field(50, ge=1, le=200)


def _delivery_out(d: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict:
    return {
        "id": d.pk,
        "message_id": d.message_id,
        "event_id": str(d.event.uuid),
        "event_type": d.event.type,
        "state": d.state,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at if d.state == "pending" else None,
        "delivered_at": d.delivered_at,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "attempt_log": [
            {
                "started_at": a.started_at,
                "status_code": a.status_code,
                "duration_ms": a.duration_ms,
                "error": a.error,
                "next_retry_at": a.next_retry_at,
                "manual": a.manual,
            }
            for a in attempts
        ],
    }


@router.get(
    "/{endpoint_id}/deliveries",
    response={200: DeliveryPage, **errors(401, 403, 404, 422)},
    summary="List an endpoint's deliveries with every attempt, newest first",
)
def list_deliveries(request: HttpRequest, endpoint_id: int, filters: Query[DeliveryFilters]):
    _require(request)
    endpoint = _endpoint(endpoint_id)
    rows = WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event")
    if filters.state:
        rows = rows.filter(state=filters.state)
    if filters.before:
        rows = rows.filter(id__lt=filters.before)
    page = list(rows.order_by("-id")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    attempts: dict[int, list[WebhookAttempt]] = {}
    for a in WebhookAttempt.objects.filter(delivery__in=page).order_by("started_at", "id"):
        attempts.setdefault(a.delivery_id, []).append(a)
    return {
        "items": [_delivery_out(d, attempts.get(d.pk, [])) for d in page],
        "next_before": page[-1].pk if more and page else None,
    }


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/resend",
    response={200: DeliveryOut, **errors(401, 403, 404, 409)},
    summary="Send a delivery again now (same webhook-id)",
)
def resend_delivery(request: HttpRequest, endpoint_id: int, delivery_id: int):
    _require(request)
    endpoint = _endpoint(endpoint_id)
    found = (
        WebhookDelivery.objects.filter(pk=delivery_id, endpoint=endpoint).first()
        if 0 < delivery_id <= MAX_ID
        else None
    )
    if found is None:
        raise HttpError(404, "No such delivery.")
    if sending.resend(found) is None:
        raise HttpError(409, "This delivery is being sent right now; try again in a moment.")
    fresh = WebhookDelivery.objects.select_related("event").get(pk=found.pk)
    return _delivery_out(fresh, list(fresh.attempt_rows.order_by("started_at", "id")))
