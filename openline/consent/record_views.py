"""Console pages for one consent record: everything about it, and its signed receipt."""

from __future__ import annotations

import uuid as uuid_module

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from openline.accounts.models import Role
from openline.accounts.permissions import READ, role_required
from openline.consent import receipt_views
from openline.consent.integrity import check_record_text
from openline.consent.models import Checkpoint, ConsentRecord
from openline.consent.receipts import notice_url
from openline.consent.sealing import seal_proof

AUDIT_ROLES = (Role.ADMINISTRATOR, Role.AUDITOR)


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
    proof = seal_proof(record)
    # The first signed checkpoint at or after the record's batch vouches for it.
    checkpoint = (
        Checkpoint.objects.filter(batch_number__gte=proof["batch_number"])
        .order_by("batch_number")
        .first()
        if proof
        else None
    )
    return render(
        request,
        "consent/record_detail.html",
        {
            "record": record,
            "shown": text_check.text,
            "text_check": text_check,
            "proof": proof,
            "checkpoint": checkpoint,
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
