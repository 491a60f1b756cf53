"""Console pages for outgoing webhooks (administrators only)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from openline.accounts.models import Role
from openline.accounts.permissions import ACTION, FORM, READ, StaffRequest, role_required
from openline.webhooks import delivery as sending
from openline.webhooks import services
from openline.webhooks.events import EVENT_TYPES
from openline.webhooks.forms import EndpointForm
from openline.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

SECTION = "webhooks"
SHOWN = 50


def _show_secret(request, endpoint: WebhookEndpoint, secret: str, *, rotated: bool) -> HttpResponse:
    response = render(
        request,
        "webhooks/secret.html",
        {"endpoint": endpoint, "secret": secret, "rotated": rotated, "section": SECTION},
    )
    # Shown once: never kept by a browser or proxy cache.
    response["Cache-Control"] = "no-store"
    return response


@role_required(Role.ADMINISTRATOR, methods=READ)
def endpoint_list(request: StaffRequest) -> HttpResponse:
    endpoints = list(WebhookEndpoint.objects.order_by("id"))
    return render(
        request,
        "webhooks/endpoint_list.html",
        {"endpoints": endpoints, "event_types": EVENT_TYPES, "section": SECTION},
    )


@role_required(Role.ADMINISTRATOR, methods=FORM)
def endpoint_create(request: StaffRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint, secret = services.create_endpoint(actor=request.user, **form.cleaned_data)
        return _show_secret(request, endpoint, secret, rotated=False)
    return render(
        request,
        "webhooks/endpoint_form.html",
        {"form": form, "endpoint": None, "event_types": EVENT_TYPES, "section": SECTION},
    )


@role_required(Role.ADMINISTRATOR, methods=FORM)
def endpoint_edit(request: StaffRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    initial = {"url": endpoint.url, "description": endpoint.description, "events": endpoint.events}
    form = EndpointForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.update_endpoint(endpoint=endpoint, **form.cleaned_data)
        messages.success(request, "Endpoint saved.")
        return redirect("webhooks:endpoint", pk=endpoint.pk)
    return render(
        request,
        "webhooks/endpoint_form.html",
        {"form": form, "endpoint": endpoint, "event_types": EVENT_TYPES, "section": SECTION},
    )


@role_required(Role.ADMINISTRATOR, methods=READ)
def endpoint_detail(request: StaffRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    deliveries = list(
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .order_by("-id")[:SHOWN]
    )
    attempts = list(
        WebhookAttempt.objects.filter(delivery__endpoint=endpoint)
        .select_related("delivery__event")
        .order_by("-started_at", "-id")[:SHOWN]
    )
    return render(
        request,
        "webhooks/endpoint_detail.html",
        {
            "endpoint": endpoint,
            "deliveries": deliveries,
            "attempts": attempts,
            "section": SECTION,
        },
    )


@role_required(Role.ADMINISTRATOR, methods=ACTION)
def endpoint_rotate(request: StaffRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    secret = services.rotate_secret(endpoint=endpoint)
    return _show_secret(request, endpoint, secret, rotated=True)


@role_required(Role.ADMINISTRATOR, methods=ACTION)
def endpoint_toggle(request: StaffRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    services.set_active(endpoint=endpoint, active=not endpoint.is_active)
    if endpoint.is_active:
        messages.success(request, "Endpoint enabled: kept events are being delivered.")
    else:
        messages.success(request, "Endpoint disabled: new events are not queued for it.")
    return redirect("webhooks:endpoint", pk=endpoint.pk)


@role_required(Role.ADMINISTRATOR, methods=FORM)
def endpoint_delete(request: StaffRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    if request.method == "POST":
        services.delete_endpoint(endpoint=endpoint)
        messages.success(request, "Endpoint deleted.")
        return redirect("webhooks:endpoints")
    return render(
        request, "webhooks/endpoint_delete.html", {"endpoint": endpoint, "section": SECTION}
    )


@role_required(Role.ADMINISTRATOR, methods=ACTION)
def delivery_resend(request: StaffRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(WebhookDelivery.objects.select_related("endpoint"), pk=pk)
    result = sending.resend(delivery)
    if result is None:
        messages.warning(request, "This event is being sent right now; look again in a moment.")
    elif result.ok:
        messages.success(request, f"Sent again: the endpoint answered HTTP {result.status_code}.")
    else:
        messages.error(request, f"Sending again failed: {result.error}")
    return redirect("webhooks:endpoint", pk=delivery.endpoint_id)
