"""Console pages for consents and the Obtained consents list."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from openline.accounts.models import Role
from openline.accounts.permissions import role_required
from openline.consent import services
from openline.consent.forms import AgreementForm
from openline.consent.models import Agreement, ConsentRecord
from openline.openchannels.models import OpenChannel
from openline.openchannels.services import update_consent_settings


@role_required(Role.ADMINISTRATOR)
def agreement_list(request: HttpRequest) -> HttpResponse:
    agreements = Agreement.objects.prefetch_related("versions")
    return render(request, "consent/agreement_list.html", {"agreements": agreements, "section": "consents"})


@role_required(Role.ADMINISTRATOR)
def agreement_create(request: HttpRequest) -> HttpResponse:
    """Create a consent; when reached from a channel's Consents tab, select it there."""
    channel = None
    if request.GET.get("channel", "").isdigit():
        channel = get_object_or_404(OpenChannel, pk=request.GET["channel"])
    form = AgreementForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        agreement = services.create_agreement(actor=request.user, **form.cleaned_data)
        messages.success(request, f"Consent “{agreement.name}” created.")
        if channel is not None:
            update_consent_settings(actor=request.user, channel=channel, consent_enabled=True, agreement=agreement)
            return redirect("openchannels:configure", pk=channel.pk, tab="consents")
        return redirect("consent:agreements")
    return render(
        request, "consent/agreement_form.html", {"form": form, "channel": channel, "section": "consents"}
    )


@role_required(Role.ADMINISTRATOR, Role.AUDITOR)
def record_list(request: HttpRequest) -> HttpResponse:
    records = ConsentRecord.objects.select_related("agreement", "version")[:50]
    return render(request, "consent/record_list.html", {"records": records, "section": "records"})
