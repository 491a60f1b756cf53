"""Console pages for consents, the Obtained consents list, record details and the audit history."""

from __future__ import annotations

import difflib
import uuid as uuid_module

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from openline.accounts.models import Role
from openline.accounts.permissions import READ, role_required
from openline.consent import receipt_views, selectors, services
from openline.consent.forms import AgreementEditForm, AgreementForm, PreviewForm, TranslationForm
from openline.consent.integrity import check_record_text, check_text, text_digest
from openline.consent.models import (
    Agreement,
    AgreementVersion,
    AuditEvent,
    ConsentRecord,
)
from openline.consent.receipts import notice_url
from openline.consent.sealing import seal_proof
from openline.core.params import is_int, parse_id, strict_params
from openline.core.sanitize import render_agreement_text, sha256_hex
from openline.openchannels.models import OpenChannel
from openline.openchannels.services import update_consent_settings

ADMIN = Role.ADMINISTRATOR
AUDIT_ROLES = (Role.ADMINISTRATOR, Role.AUDITOR)


def _form_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


# ----- consents ---------------------------------------------------------------------------


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
            _form_errors(form, exc)
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
            _form_errors(form, exc)
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
                _form_errors(form, exc)
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


@role_required(*AUDIT_ROLES, methods=READ)
def agreement_versions(request: HttpRequest, pk: int) -> HttpResponse:
    """The "Versions" tab: every wording this consent ever had."""
    agreement = get_object_or_404(Agreement, pk=pk)
    versions = (
        agreement.versions.select_related("created_by")
        .prefetch_related("texts")
        .order_by("-number")
    )
    return render(
        request,
        "consent/agreement_versions.html",
        {"agreement": agreement, "versions": versions, "section": "consents", "tab": "versions"},
    )


def _version(pk: int, number: int) -> AgreementVersion:
    return get_object_or_404(
        AgreementVersion.objects.select_related("agreement", "created_by").prefetch_related(
            "texts"
        ),
        agreement_id=pk,
        number=number,
    )


@role_required(*AUDIT_ROLES, methods=READ)
def version_detail(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Show one version exactly as clients saw it, in every language."""
    version = _version(pk, number)
    return render(
        request,
        "consent/version_detail.html",
        {
            "agreement": version.agreement,
            "version": version,
            "text_checks": [check_text(t) for t in version.texts.all()],
            "section": "consents",
            "tab": "versions",
        },
    )


def _diff_lines(old: str, new: str) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        code, text = line[:1], line[2:]
        if code == "?":
            continue
        lines.append(({"+": "add", "-": "del"}.get(code, "same"), text))
    return lines


@role_required(*AUDIT_ROLES, methods=READ)
def version_diff(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Compare a version with an earlier one (the previous by default), language by language."""
    version = _version(pk, number)
    against_raw = request.GET.get("against", "")
    if against_raw and not is_int(against_raw, minimum=1):
        raise Http404("Unknown version")  # not a version number, so no such version
    against = _version(pk, int(against_raw) if against_raw else max(number - 1, 1))
    old = {t.language: t for t in against.texts.all()}
    new = {t.language: t for t in version.texts.all()}
    languages = sorted(set(old) | set(new))
    diffs = [
        {
            "language": lang,
            # Recomputed from the stored wording, like the record page: columns are claims.
            "old_sha": text_digest(old[lang]) if lang in old else None,
            "new_sha": text_digest(new[lang]) if lang in new else None,
            "lines": _diff_lines(
                old[lang].text if lang in old else "", new[lang].text if lang in new else ""
            ),
        }
        for lang in languages
    ]
    return render(
        request,
        "consent/version_diff.html",
        {
            "agreement": version.agreement,
            "version": version,
            "against": against,
            "diffs": diffs,
            "all_versions": version.agreement.versions.order_by("-number"),
            "section": "consents",
            "tab": "versions",
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


# ----- obtained consents ------------------------------------------------------------------


def _export_params(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("cursor", None)
    params.pop("format", None)
    return params.urlencode()


@role_required(*AUDIT_ROLES, methods=READ)
def record_list(request: HttpRequest) -> HttpResponse:
    """The Obtained consents list: filter in the URL, newest first, keyset pages."""
    form, flt = selectors.parse_filter(request.GET)
    cursor = None
    cursor_error = ""
    if request.GET.get("cursor"):
        try:
            cursor = selectors.decode_cursor(request.GET["cursor"])
        except selectors.BadCursor as exc:
            cursor_error = str(exc)
    qs = (
        selectors.filtered_records(flt)
        .select_related("agreement", "version", "visitor")
        .only(*selectors.LIST_COLUMNS)
    )
    page = selectors.page_of(qs, cursor)
    # Counting is for orientation only: once, on the first page, capped or estimated.
    count, exact = (
        selectors.count_estimate(selectors.filtered_records(flt)) if cursor is None else (0, False)
    )
    params = _export_params(request)
    return render(
        request,
        "consent/record_list.html",
        {
            "form": form,
            "flt": flt,
            "page": page,
            "records": page.records,
            "count": count,
            "exact": exact,
            "params": params,
            "cursor_error": cursor_error,
            "is_first_page": cursor is None,
            "section": "records",
        },
    )


def _export_response(
    request: HttpRequest, chunks, content_type: str, filename: str
) -> StreamingHttpResponse:
    if isinstance(request, ASGIRequest):
        # Under ASGI a sync iterator would be read whole before sending; stream it instead.
        iterator = chunks

        async def stream():
            step = sync_to_async(next, thread_sensitive=True)
            while True:
                part = await step(iterator, None)
                if part is None:
                    return
                yield part

        response = StreamingHttpResponse(stream(), content_type=content_type)
    else:
        response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@role_required(*AUDIT_ROLES, methods=READ)
def record_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Stream the filtered records as CSV or JSON Lines, a keyset chunk at a time."""
    form, flt = selectors.parse_filter(request.GET)
    if form.errors:
        return HttpResponse(
            "Fix the filter first: "
            + "; ".join(f"{k}: {' '.join(str(m) for m in v)}" for k, v in form.errors.items()),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    fmt = request.GET.get("format", "csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    if fmt == "csv":
        return _export_response(
            request,
            selectors.csv_chunks(flt),
            "text/csv; charset=utf-8",
            f"obtained-consents-{stamp}.csv",
        )
    if fmt == "jsonl":
        return _export_response(
            request,
            selectors.jsonl_chunks(flt),
            "application/jsonl; charset=utf-8",
            f"obtained-consents-{stamp}.jsonl",
        )
    return HttpResponse(
        "Unknown export format: use csv or jsonl.",
        status=400,
        content_type="text/plain; charset=utf-8",
    )


def _record(record_uuid) -> ConsentRecord:
    if not isinstance(record_uuid, uuid_module.UUID):
        raise Http404("Unknown record")
    return get_object_or_404(
        ConsentRecord.objects.select_related(
            "agreement", "version", "visitor", "channel", "conversation"
        ),
        uuid=record_uuid,
    )


@role_required(*AUDIT_ROLES, methods=READ)
def record_detail(request: HttpRequest, record_uuid) -> HttpResponse:
    """Everything about one record, with the exact text its client was shown."""
    record = _record(record_uuid)
    # Recompute the text's hash: a stored hash column is only a claim.
    text_check = check_record_text(record)
    history = (
        ConsentRecord.objects.filter(visitor=record.visitor_id, agreement=record.agreement_id)
        .select_related("version")
        .order_by("-created_at", "-id")[:20]
    )
    return render(
        request,
        "consent/record_detail.html",
        {
            "record": record,
            "shown": text_check.text,
            "text_check": text_check,
            "proof": seal_proof(record),
            "notice_url": notice_url(record),
            "history": history,
            "section": "records",
        },
    )


@role_required(*AUDIT_ROLES, methods=READ)
def record_receipt(request: HttpRequest, record_uuid) -> HttpResponse:
    """Download the record's signed receipt (JSON), or show it printable (``?format=html``)."""
    record = _record(record_uuid)
    try:
        fmt = receipt_views.receipt_format(request)
    except receipt_views.UnknownFormat as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    return receipt_views.receipt_response(request, record, fmt=fmt, attachment=fmt == "json")


# ----- audit history ----------------------------------------------------------------------


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
            "next_before": rows[-1].pk if more else None,
            "agreement": agreement,
            "channel": channel,
            "params": params.urlencode(),
            "section": "audit",
        },
    )


# ----- public -----------------------------------------------------------------------------


def _accepted_languages(request: HttpRequest) -> list[str]:
    from django.utils.translation.trans_real import parse_accept_lang_header

    wanted = [request.GET.get("lang", "")]
    wanted += [
        code for code, _ in parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", ""))
    ]
    return [w.lower() for w in wanted if w and w != "*"]


def public_version(request: HttpRequest, code: str) -> HttpResponse:
    """Show exactly one version's text to anyone with its unguessable link."""
    version = get_object_or_404(
        AgreementVersion.objects.select_related("agreement").prefetch_related("texts"),
        public_code=code,
    )
    texts = {t.language: t for t in version.texts.all()}
    chosen = None
    for wanted in _accepted_languages(request):
        chosen = texts.get(wanted) or texts.get(wanted.split("-")[0])
        if chosen:
            break
    if chosen is None:
        chosen = texts.get(version.agreement.default_language) or next(iter(texts.values()))
    response = render(
        request,
        "consent/public_version.html",
        {
            "version": version,
            "agreement": version.agreement,
            "text": chosen,
            "texts": texts.values(),
        },
    )
    response["Content-Language"] = chosen.language
    response["Vary"] = "Accept-Language"
    return response
