"""Consent pages that also need Open Channels: creating a consent from a channel's Consents
tab, and the consent history filtered by channel.

They live above the registry (which imports no Open Channels) under its URL names.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from openline.accounts.models import Role
from openline.accounts.permissions import READ, role_required
from openline.consent import services
from openline.consent.forms import AgreementForm, add_errors
from openline.consent.models import Agreement, AuditEvent
from openline.console.diffs import event_changes
from openline.core.params import parse_id, strict_params
from openline.openchannels.models import OpenChannel
from openline.openchannels.services import update_consent_settings

ADMIN = Role.ADMINISTRATOR
AUDIT_ROLES = (Role.ADMINISTRATOR, Role.AUDITOR)


@role_required(ADMIN)
@strict_params
def agreement_create(request: HttpRequest) -> HttpResponse:
    """Create a consent; when reached from a channel's Consents tab, select it there."""
    channel = None
    channel_id = parse_id(request.GET.get("channel"), name="channel")
    if channel_id is not None:
        channel = get_object_or_404(OpenChannel, pk=channel_id)
    form = AgreementForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            agreement = services.create_agreement(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, f"Consent “{agreement.name}” created.")
            if channel is not None:
                update_consent_settings(
                    actor=request.user,  # type: ignore[arg-type]
                    channel=channel,
                    consent_enabled=True,
                    agreement=agreement,
                )
                return redirect("openchannels:configure", pk=channel.pk, tab="consents")
            return redirect("consent:agreement_edit", pk=agreement.pk)
    return render(
        request,
        "consent/agreement_form.html",
        {"form": form, "channel": channel, "section": "consents", "tab": "text", "agreement": None},
    )


@role_required(*AUDIT_ROLES, methods=READ)
@strict_params
def audit_list(request: HttpRequest) -> HttpResponse:
    """The consent workflow's history: channel consent settings and consent changes."""
    events = AuditEvent.objects.select_related("actor").order_by("-id")
    agreement = channel = None
    agreement_id = parse_id(request.GET.get("consent"), name="consent")
    channel_id = parse_id(request.GET.get("channel"), name="channel")
    before = parse_id(request.GET.get("before"), name="before")
    if agreement_id is not None:
        agreement = get_object_or_404(Agreement, pk=agreement_id)
        events = events.filter(agreement=agreement)
    if channel_id is not None:
        channel = get_object_or_404(OpenChannel, pk=channel_id)
        events = events.filter(channel=channel)
    if before is not None:
        events = events.filter(id__lt=before)
    rows = list(events[:51])
    more = len(rows) > 50
    rows = rows[:50]
    params = request.GET.copy()
    params.pop("before", None)
    return render(
        request,
        "consent/audit_list.html",
        {
            "events": rows,
            "changes": event_changes(rows),
            "next_before": rows[-1].pk if more else None,
            "agreement": agreement,
            "channel": channel,
            "params": params.urlencode(),
            "section": "audit",
        },
    )
