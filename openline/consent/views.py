"""Console pages for consents: the list, name and text, languages, (de)activation, preview.

Versions are in ``version_views.py``, a record's page in ``record_views.py``; the pages that
also need Open Channels (creating a consent from a channel, Obtained consents, the history)
live above the registry, in ``openline.console``.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from openline.accounts.models import Role
from openline.accounts.permissions import READ, role_required
from openline.consent import services
from openline.consent.forms import AgreementEditForm, PreviewForm, TranslationForm, add_errors
from openline.consent.models import Agreement, AgreementVersion
from openline.core.sanitize import render_agreement_text, sha256_hex

ADMIN = Role.ADMINISTRATOR


@role_required(ADMIN, methods=READ)
def agreement_list(request: HttpRequest) -> HttpResponse:
    """List consents with their current version and record counts."""
    agreements = Agreement.objects.annotate(
        version_count=Count("versions", distinct=True)
    ).prefetch_related(Prefetch("versions", queryset=AgreementVersion.objects.order_by("-number")))
    return render(
        request, "consent/agreement_list.html", {"agreements": agreements, "section": "consents"}
    )


@role_required(ADMIN)
def agreement_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The "Name and text" tab: rename, reword (a new version) or switch HTML on or off."""
    agreement = get_object_or_404(Agreement, pk=pk)
    current = agreement.current_version
    default_text = (
        current.texts.filter(language=agreement.default_language).first() if current else None
    )
    initial = {
        "name": agreement.name,
        "text": default_text.text if default_text else "",
        "allow_html": current.allow_html if current else False,
    }
    form = AgreementEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            version = services.update_agreement(
                actor=request.user,
                agreement=agreement,
                name=data["name"],
                allow_html=data["allow_html"],
                texts={agreement.default_language: data["text"]},
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            if version is None:
                messages.success(
                    request, "Saved. The text did not change, so no new version was made."
                )
            else:
                messages.success(request, f"Saved as version {version.number}.")
            return redirect("consent:agreement_edit", pk=agreement.pk)
    return render(
        request,
        "consent/agreement_form.html",
        {
            "form": form,
            "agreement": agreement,
            "current": current,
            "section": "consents",
            "tab": "text",
        },
    )


@role_required(ADMIN)
def agreement_languages(request: HttpRequest, pk: int) -> HttpResponse:
    """The "Languages" tab: the same consent in other languages (saving makes a new version)."""
    agreement = get_object_or_404(Agreement, pk=pk)
    current = agreement.current_version
    texts = list(current.texts.all()) if current else []
    language = request.GET.get("language", "")
    initial_text = next((t.text for t in texts if t.language == language), "")
    form = TranslationForm(
        request.POST or None, initial={"language": language, "text": initial_text}
    )
    if request.method == "POST":
        try:
            if "remove" in request.POST:
                version = services.update_agreement(
                    actor=request.user,
                    agreement=agreement,
                    remove_languages=(request.POST["remove"],),
                )
            elif "make_default" in request.POST:
                version = services.update_agreement(
                    actor=request.user,
                    agreement=agreement,
                    default_language=request.POST["make_default"],
                )
            elif form.is_valid():
                version = services.update_agreement(
                    actor=request.user,
                    agreement=agreement,
                    texts={form.cleaned_data["language"]: form.cleaned_data["text"]},
                )
            else:
                raise ValidationError({})
        except ValidationError as exc:
            if exc.messages:
                add_errors(form, exc)
        else:
            messages.success(
                request,
                f"Saved as version {version.number}." if version else "Saved. Nothing changed.",
            )
            return redirect("consent:agreement_languages", pk=agreement.pk)
    return render(
        request,
        "consent/agreement_languages.html",
        {
            "form": form,
            "agreement": agreement,
            "current": current,
            "texts": texts,
            "section": "consents",
            "tab": "languages",
        },
    )


@role_required(ADMIN)
@require_POST
def agreement_set_active(request: HttpRequest, pk: int) -> HttpResponse:
    """Deactivate or reactivate a consent (there is no delete)."""
    agreement = get_object_or_404(Agreement, pk=pk)
    try:
        services.set_agreement_active(
            actor=request.user, agreement=agreement, is_active=request.POST.get("is_active") == "1"
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        agreement.refresh_from_db()
        messages.success(
            request,
            f"Consent “{agreement.name}” {'reactivated' if agreement.is_active else 'deactivated'}.",
        )
    return redirect("consent:agreement_edit", pk=agreement.pk)


@role_required(ADMIN)
@require_POST
def agreement_preview(request: HttpRequest) -> JsonResponse:
    """Render a draft text exactly as a client would see it (the sanitiser decides, not the browser)."""
    form = PreviewForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": "The text is too long to preview."}, status=400)
    html = render_agreement_text(
        form.cleaned_data["text"], allow_html=form.cleaned_data["allow_html"]
    )
    return JsonResponse({"html": html, "sha256": sha256_hex(html)})
