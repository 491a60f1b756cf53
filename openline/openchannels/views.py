"""Contact center pages: connectors, their Open Channels, and Open Channel settings."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from openline.accounts.models import Role
from openline.accounts.permissions import READ, StaffRequest, role_required
from openline.openchannels import services
from openline.openchannels.forms import ConsentSettingsForm, OpenChannelCreateForm, OpenChannelForm
from openline.openchannels.models import CONNECTOR_DESCRIPTIONS, ConnectorKind, OpenChannel

TABS = [("general", "General"), ("connectors", "Connectors"), ("consents", "Consents")]


def _visible_channels(user):
    channels = OpenChannel.objects.all()
    if user.role != Role.ADMINISTRATOR:
        channels = channels.filter(operators=user)
    return channels


def _connector_kind(kind: str) -> ConnectorKind:
    try:
        return ConnectorKind(kind)
    except ValueError:
        raise Http404("Unknown connector") from None


def _form_errors_from(form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, methods=READ)
def contact_center(request: StaffRequest) -> HttpResponse:
    """List the connectors, like CRM → Customers → Contact center."""
    channels = _visible_channels(request.user)
    counts = dict(
        channels.filter(connectors__is_enabled=True)
        .values_list("connectors__kind")
        .annotate(n=Count("id", distinct=True))
    )
    tiles = [
        {
            "kind": kind,
            "label": kind.label,
            "description": CONNECTOR_DESCRIPTIONS[kind],
            "count": counts.get(kind.value, 0),
        }
        for kind in ConnectorKind
    ]
    return render(
        request, "openchannels/contact_center.html", {"tiles": tiles, "section": "contact_center"}
    )


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, methods=READ)
def connector_channels(request: StaffRequest, kind: str) -> HttpResponse:
    """List the Open Channels, showing whether each uses this connector."""
    connector_kind = _connector_kind(kind)
    channels = (
        _visible_channels(request.user)
        .annotate(
            uses_connector=Count(
                "connectors", filter=Q(connectors__kind=connector_kind, connectors__is_enabled=True)
            )
        )
        .select_related("agreement")
        .prefetch_related("operators")
        .order_by("-is_active", "name")
    )
    return render(
        request,
        "openchannels/connector_channels.html",
        {
            "kind": connector_kind,
            "channels": channels,
            "section": "contact_center",
            "description": CONNECTOR_DESCRIPTIONS[connector_kind],
        },
    )


@role_required(Role.ADMINISTRATOR)
def channel_create(request: StaffRequest) -> HttpResponse:
    initial_kind = request.GET.get("connector")
    initial = {"connectors": [initial_kind]} if initial_kind in ConnectorKind.values else None
    form = OpenChannelCreateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        channel = services.create_open_channel(actor=request.user, **form.cleaned_data)
        messages.success(request, f"Open Channel “{channel.name}” created.")
        return redirect("openchannels:configure", pk=channel.pk, tab="general")
    return render(
        request, "openchannels/channel_create.html", {"form": form, "section": "contact_center"}
    )


@role_required(Role.ADMINISTRATOR)
def channel_configure(request: StaffRequest, pk: int, tab: str = "general") -> HttpResponse:
    """Configure an Open Channel, one tab at a time."""
    channel = get_object_or_404(OpenChannel.objects.select_related("agreement"), pk=pk)
    if tab not in dict(TABS):
        raise Http404("Unknown tab")
    context: dict[str, object] = {
        "channel": channel,
        "tab": tab,
        "tabs": TABS,
        "section": "contact_center",
    }
    if tab == "general":
        initial = {
            "name": channel.name,
            "operators": channel.operators.all(),
            "crm_item_kind": channel.crm_item_kind,
        }
        form = OpenChannelForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            services.update_open_channel(actor=request.user, channel=channel, **form.cleaned_data)
            messages.success(request, "Settings saved.")
            return redirect("openchannels:configure", pk=channel.pk, tab="general")
        context["form"] = form
    elif tab == "consents":
        consent_initial = {
            "consent_enabled": channel.consent_enabled,
            "agreement": channel.agreement,
        }
        consent_form = ConsentSettingsForm(
            request.POST or None, initial=consent_initial, current=channel.agreement
        )
        if request.method == "POST" and consent_form.is_valid():
            try:
                services.update_consent_settings(
                    actor=request.user, channel=channel, **consent_form.cleaned_data
                )
            except ValidationError as exc:
                _form_errors_from(consent_form, exc)
            else:
                messages.success(request, "Consent settings saved.")
                return redirect("openchannels:configure", pk=channel.pk, tab="consents")
        context["form"] = consent_form
        context["create_consent_url"] = (
            reverse("consent:agreement_create") + "?channel=" + str(channel.pk)
        )
    elif tab == "connectors":
        connectors = {c.kind: c for c in channel.connectors.all()}
        if request.method == "POST":
            enabled = set(request.POST.getlist("enabled"))
            unknown = enabled - set(ConnectorKind.values)
            if unknown:
                messages.error(request, "Unknown connector.")
            else:
                for kind in ConnectorKind:
                    if kind.value in enabled or kind.value in connectors:
                        services.set_connector(
                            actor=request.user,
                            channel=channel,
                            kind=kind,
                            is_enabled=kind.value in enabled,
                        )
                messages.success(request, "Connectors saved.")
                return redirect("openchannels:configure", pk=channel.pk, tab="connectors")
        context["connector_rows"] = [
            {
                "kind": kind,
                "label": kind.label,
                "description": CONNECTOR_DESCRIPTIONS[kind],
                "connector": connectors.get(kind.value),
            }
            for kind in ConnectorKind
        ]
    return render(request, f"openchannels/configure_{tab}.html", context)


@role_required(Role.ADMINISTRATOR)
@require_POST
def channel_set_active(request: StaffRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(OpenChannel, pk=pk)
    is_active = request.POST.get("active") == "1"
    services.set_channel_active(actor=request.user, channel=channel, is_active=is_active)
    messages.success(
        request, f"Open Channel “{channel.name}” {'activated' if is_active else 'deactivated'}."
    )
    return redirect("openchannels:configure", pk=channel.pk, tab="general")
