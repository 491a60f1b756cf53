"""Contact center pages: connectors, their Open Channels, and Open Channel settings."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from openline.accounts.models import Role
from openline.accounts.permissions import READ, StaffRequest, role_required
from openline.openchannels import policy, services
from openline.openchannels.forms import ConsentSettingsForm, OpenChannelCreateForm, OpenChannelForm
from openline.openchannels.models import (
    CONNECTOR_DESCRIPTIONS,
    ConnectionState,
    Connector,
    ConnectorKind,
    OpenChannel,
)

TABS = [("general", "General"), ("connectors", "Connectors"), ("consents", "Consents")]


def _warning_preview(request: StaffRequest, channel: OpenChannel) -> dict | None:
    """Show the messenger warning as a client receives it, with the current version's link."""
    version = channel.agreement.current_version if channel.agreement is not None else None
    if version is None:
        return None
    path = reverse("consent_public:version", kwargs={"code": version.public_code})
    base = (getattr(settings.CONFIG, "public_url", "") or "").rstrip("/")
    link = base + path if base else request.build_absolute_uri(path)
    return {"text": policy.warning_text(channel, "en", link), "link": link, "version": version}


def _working(prefix: str = "") -> Q:
    """Match connectors that work: Live chat switched on, a messenger the platform confirmed."""
    return Q(**{f"{prefix}kind": ConnectorKind.LIVECHAT, f"{prefix}is_enabled": True}) | (
        ~Q(**{f"{prefix}kind": ConnectorKind.LIVECHAT})
        & Q(**{f"{prefix}state": ConnectionState.CONNECTED})
    )


STATE_BADGES = {
    ConnectionState.NOT_CONNECTED: "badge-muted",
    ConnectionState.PENDING: "badge-warn",
    ConnectionState.CONNECTED: "badge-ok",
    ConnectionState.ERROR: "badge-danger",
}


def _state_badge(kind: str, connector: Connector | None) -> tuple[str, str]:
    """Return (label, badge class) of a connector's state as shown in lists."""
    if kind == ConnectorKind.LIVECHAT:
        if connector is not None and connector.is_enabled:
            return "Connected", "badge-ok"
        return "Not connected", "badge-muted"
    state = (
        ConnectionState(connector.state) if connector is not None else ConnectionState.NOT_CONNECTED
    )
    return state.label, STATE_BADGES[state]


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
        Connector.objects.filter(_working(), channel__in=channels)
        .values_list("kind")
        .annotate(n=Count("channel", distinct=True))
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
    channels = list(
        _visible_channels(request.user)
        .select_related("agreement")
        .prefetch_related("operators", "connectors")
        .order_by("-is_active", "name")
    )
    for channel in channels:
        channel.connector_badge = _state_badge(connector_kind, channel.connector(connector_kind))
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
            "messenger_consent_mode": channel.messenger_consent_mode,
            "messenger_warning_text": channel.messenger_warning_text,
            "withdraw_keywords": channel.withdraw_keywords,
            "unconfirmed_retention_days": channel.unconfirmed_retention_days,
        }
        consent_form = ConsentSettingsForm(
            request.POST or None, initial=consent_initial, current=channel.agreement
        )
        if request.method == "POST" and consent_form.is_valid():
            try:
                services.update_consent_settings(
                    actor=request.user, channel=channel, **consent_form.settings()
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
        context["warning_preview"] = _warning_preview(request, channel)
    elif tab == "connectors":
        connectors = {c.kind: c for c in channel.connectors.all()}
        if request.method == "POST":
            # Only Live chat is switched on here; a messenger is connected with working
            # credentials on its own page, so a tick box can never make it "Connected".
            enabled = set(request.POST.getlist("enabled"))
            if enabled - set(ConnectorKind.values):
                messages.error(request, "Unknown connector.")
            else:
                livechat = ConnectorKind.LIVECHAT
                if livechat.value in enabled or livechat.value in connectors:
                    services.set_connector(
                        actor=request.user,
                        channel=channel,
                        kind=livechat,
                        is_enabled=livechat.value in enabled,
                    )
                messages.success(request, "Connectors saved.")
                return redirect("openchannels:configure", pk=channel.pk, tab="connectors")
        context["connector_rows"] = [
            {
                "kind": kind,
                "label": kind.label,
                "description": CONNECTOR_DESCRIPTIONS[kind],
                "connector": connectors.get(kind.value),
                "badge": _state_badge(kind, connectors.get(kind.value)),
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
