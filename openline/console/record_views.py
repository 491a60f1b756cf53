"""Obtained consents: the list filtered by consent, Open Channel, date, origin, state or
client, and its exports.

The registry's selectors know no Open Channels and no CRM; this page hands them the channels
to filter by and the visitors whose known name, e-mail or phone matches the search, and shows
each client by the name the CRM knows (nothing is written to the registry).
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from openline.accounts.models import Role
from openline.accounts.permissions import READ, role_required
from openline.consent import export, selectors
from openline.conversations import naming
from openline.openchannels.models import OpenChannel

AUDIT_ROLES = (Role.ADMINISTRATOR, Role.AUDITOR)


def channels_by_id() -> dict[int, OpenChannel]:
    """Return the Open Channels one may filter records by, in display order."""
    return {c.pk: c for c in OpenChannel.objects.order_by("name", "id")}


def parse_record_filter(request: HttpRequest):
    """Bind the filter to the query; the list and both exports share it (filters = export)."""
    form, flt = selectors.parse_filter(request.GET, channels=channels_by_id())
    if flt.q:
        # A lazy subquery of ids: list and exports embed it, however many clients match.
        flt.q_visitor_ids = naming.visitors_matching(flt.q)
    return form, flt


def client_labels(records) -> dict[int, str]:
    """Return the name to show for each record's client, from one lookup for the page."""
    visitors = {r.visitor_id: r.visitor for r in records}
    known = naming.client_names(visitors)
    return {vid: naming.label(visitors[vid], known.get(vid)) for vid in visitors}


def _export_params(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("cursor", None)
    params.pop("format", None)
    return params.urlencode()


@role_required(*AUDIT_ROLES, methods=READ)
def record_list(request: HttpRequest) -> HttpResponse:
    """The Obtained consents list: filter in the URL, newest first, keyset pages."""
    form, flt = parse_record_filter(request)
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
            "names": client_labels(page.records),
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
    form, flt = parse_record_filter(request)
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
            export.csv_chunks(flt),
            "text/csv; charset=utf-8",
            f"obtained-consents-{stamp}.csv",
        )
    if fmt == "jsonl":
        return _export_response(
            request,
            export.jsonl_chunks(flt),
            "application/jsonl; charset=utf-8",
            f"obtained-consents-{stamp}.jsonl",
        )
    return HttpResponse(
        "Unknown export format: use csv or jsonl.",
        status=400,
        content_type="text/plain; charset=utf-8",
    )
