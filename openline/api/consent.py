"""Consent registry API: read records and receipts, record and withdraw consent, verify.

Records are never changed: PUT, PATCH and DELETE answer 405. It lives with the API, above the
registry, because it joins the registry with visitors and Open Channels. Its operation ids are
the ones it was published with, so clients generated from the schema keep working.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Literal
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.responses import Status

from openline.accounts.models import Role
from openline.accounts.permissions import has_role
from openline.api import registry
from openline.consent import receipt_views, selectors, services
from openline.consent.models import (
    Agreement,
    AgreementVersion,
    ConsentMethod,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
    SourceType,
)
from openline.conversations import naming, withdrawal
from openline.conversations.models import Visitor
from openline.core.api_errors import errors
from openline.core.pageurl import is_page_url
from openline.core.params import AsciiDigits, QueryId
from openline.openchannels.models import OpenChannel
from openline.openchannels.services import consent_settings

router = Router(tags=["consent registry"])


def _operation_id(name: str) -> str:
    # The id django-ninja derived from the router's first home, ``openline.consent.api``.
    return f"openline_consent_api_{name}"


READERS = (Role.ADMINISTRATOR, Role.AUDITOR)


def _require(request: HttpRequest, *roles: str) -> None:
    if not has_role(request.user, *roles):
        raise HttpError(403, "Your role does not give access to consent records.")


class RecordOut(Schema):
    id: UUID
    created_at: dt.datetime
    consent_id: int
    consent: str
    version: int
    language: str
    text_sha256: str
    state: str
    method: str
    origin: str
    visitor_id: UUID
    user: str
    source_type: str
    source_id: str
    source_label: str
    address: str
    ip: str | None
    ip_missing_reason: str
    user_agent: str
    channel_id: int | None
    conversation_id: int | None
    evidence: dict


def _out(record: ConsentRecord) -> dict:
    return {
        "id": record.uuid,
        "created_at": record.created_at,
        "consent_id": record.agreement_id,
        "consent": record.agreement.name,
        "version": record.version.number,
        "language": record.language,
        "text_sha256": record.text_sha256,
        "state": record.state,
        "method": record.method,
        "origin": record.origin,
        "visitor_id": record.visitor.public_id,
        "user": record.user_display,
        "source_type": record.source_type,
        "source_id": record.source_id,
        "source_label": record.source_label,
        "address": record.address,
        "ip": record.ip,
        "ip_missing_reason": record.ip_missing_reason,
        "user_agent": record.user_agent,
        "channel_id": record.channel_id,
        "conversation_id": record.conversation_id,
        "evidence": record.evidence,
    }


class RecordPage(Schema):
    items: list[RecordOut]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next (older) page."
    )


class RecordFilters(Schema):
    consent: QueryId | None = None
    channel: QueryId | None = None
    origin: ConsentOrigin | None = None
    state: ConsentState | None = None
    since: dt.date | None = Field(None, description="First day (inclusive), YYYY-MM-DD")
    until: dt.date | None = Field(None, description="Last day (inclusive), YYYY-MM-DD")
    q: str | None = Field(None, max_length=200, description="User name, e-mail, visitor id or IP")
    cursor: str | None = Field(None, max_length=200)
    limit: Annotated[int, AsciiDigits] = Field(50, ge=1, le=500)


_RELATED = ("agreement", "version", "visitor")


@router.get(
    "/records",
    response={200: RecordPage, **errors(400, 401, 403, 404, 422)},
    operation_id=_operation_id("list_records"),
    summary="List consent records, newest first (keyset pages)",
)
def list_records(request: HttpRequest, filters: Query[RecordFilters]):
    _require(request, *READERS)
    params = {
        "consent": filters.consent or "",
        "channel": filters.channel or "",
        "origin": filters.origin or "",
        "state": filters.state or "",
        "q": filters.q or "",
        "date_from": filters.since or "",
        "date_to": filters.until or "",
        "period": "custom" if (filters.since or filters.until) else "",
    }
    channels = {c.pk: c for c in OpenChannel.objects.order_by("name", "id")}
    form, flt = selectors.parse_filter(
        {k: str(v) for k, v in params.items() if v}, channels=channels
    )
    if form.errors:
        first = next(iter(form.errors.items()))
        if first[0] in ("consent", "channel"):
            raise HttpError(404, " ".join(str(m) for m in first[1]))
        raise HttpError(422, f"{first[0]}: {' '.join(str(m) for m in first[1])}")
    if flt.q:
        # As in Obtained consents: the search also finds clients by their CRM name.
        flt.q_visitor_ids = naming.visitors_matching(flt.q)  # a subquery, not a list of ids
    try:
        cursor = selectors.decode_cursor(filters.cursor) if filters.cursor else None
    except selectors.BadCursor as exc:
        raise HttpError(400, str(exc)) from exc
    page = selectors.page_of(
        selectors.filtered_records(flt).select_related(*_RELATED), cursor, filters.limit
    )
    return {"items": [_out(r) for r in page.records], "next_cursor": page.next_cursor}


def _get_record(record_id: UUID) -> ConsentRecord:
    return get_object_or_404(ConsentRecord.objects.select_related(*_RELATED), uuid=record_id)


@router.get(
    "/records/{record_id}",
    response={200: RecordOut, **errors(401, 403, 404, 422)},
    operation_id=_operation_id("get_record"),
    summary="Get one consent record",
)
def get_record(request: HttpRequest, record_id: UUID):
    _require(request, *READERS)
    return _out(_get_record(record_id))


@router.get(
    "/records/{record_id}/receipt",
    response={200: dict, **errors(401, 403, 404, 422)},
    operation_id=_operation_id("get_receipt"),
    summary="Get the signed consent receipt (Kantara / ISO/IEC TS 27560 names), JSON or HTML",
    description=(
        "The receipt's fields plus `jws`: a compact JWS (Ed25519, typ `openline-receipt+jws`) "
        "over the canonical JSON of the other fields, verifiable with `/registry/jwks.json`. "
        "It carries the record's leaf, its Merkle audit path and the signed checkpoint of its "
        "seal batch (or `pending`). `format=html` answers a printable, self-contained page "
        "with the same signed receipt embedded; check either at `/registry/receipt-check`."
    ),
    openapi_extra={
        "responses": {
            200: {
                "description": "The signed receipt (JSON), or its printable form (HTML)",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        }
    },
)
def get_receipt(
    request: HttpRequest,
    record_id: UUID,
    fmt: Literal["json", "html"] = Query(
        "json", alias="format", description="json (default) or html (printable)"
    ),
):
    _require(request, *READERS)
    record = _get_record(record_id)
    return receipt_views.receipt_response(request, record, fmt=fmt, attachment=False)


class RecordIn(Schema):
    visitor_id: UUID = Field(description="The visitor's public id")
    consent_id: int
    version: int | None = Field(
        None, description="Version number; the current version when left out"
    )
    language: str = Field("", max_length=10)
    state: Literal["given"] = "given"
    source_id: str = Field("", max_length=64)
    source_label: str = Field("", max_length=300)
    address: str = Field("", max_length=2000)
    ip: str | None = Field(None, description="The client's IP address, if the caller knows it")
    user_agent: str = Field("", max_length=1000)
    evidence: dict = Field(default_factory=dict)


class WithdrawIn(Schema):
    visitor_id: UUID
    consent_id: int
    address: str = Field("", max_length=2000)
    ip: str | None = None
    user_agent: str = Field("", max_length=1000)
    evidence: dict = Field(default_factory=dict)


# Evidence keys the server writes itself (here, in the consent services and on the other paths
# that record consent). A client naming one would forge what the server vouches for.
SERVER_EVIDENCE_KEYS = frozenset(
    {
        "recorded_by",
        "channel_consent_settings",
        "requested_language",
        "withdraws_record",
        "operator",
        "crm_item",
        "links_record",
        "conversation",
        "widget",
        "shown_sha256",
        "channel",
    }
)


def _client_evidence(evidence: dict) -> dict:
    """Return the caller's evidence, refusing keys the server sets (422 naming them)."""
    clashes = sorted(SERVER_EVIDENCE_KEYS.intersection(evidence))
    if clashes:
        names = ", ".join(f"evidence.{key}" for key in clashes)
        raise HttpError(
            422, f"{names}: set by Openline itself; put your own data under another key."
        )
    return evidence


def _page_address(value: str) -> str:
    """Return the page URL the caller reports, refusing anything but http(s) (422)."""
    if value and not is_page_url(value):
        raise HttpError(422, "address: give the http(s) URL of the page, or leave it out.")
    return value


def _settings_of(channel) -> dict | None:
    return consent_settings(channel) if channel is not None else None


def _valid_ip(value: str | None) -> str:
    if not value:
        return ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise HttpError(422, "ip: enter a valid IPv4 or IPv6 address.") from exc


@router.post(
    "/records",
    response={201: RecordOut, **errors(400, 401, 403, 404, 422)},
    operation_id=_operation_id("create_record"),
    summary="Record a consent given through the API",
)
def create_record(request: HttpRequest, payload: RecordIn):
    _require(request, Role.ADMINISTRATOR)
    visitor = get_object_or_404(Visitor, public_id=payload.visitor_id)
    agreement = get_object_or_404(Agreement, pk=payload.consent_id)
    if not agreement.is_active:
        raise HttpError(400, "This consent is deactivated; it cannot be given any more.")
    if payload.version is None:
        version = agreement.current_version
    else:
        version = get_object_or_404(AgreementVersion, agreement=agreement, number=payload.version)
    if version is None:
        raise HttpError(404, "This consent has no version.")
    try:
        record = services.record_consent(
            visitor=visitor,
            version=version,
            language=payload.language or visitor.language,
            state=ConsentState.GIVEN,
            method=ConsentMethod.API,
            origin=ConsentOrigin.API,
            source_type=SourceType.API,
            source_id=payload.source_id,
            channel=visitor.channel,
            channel_settings=_settings_of(visitor.channel),
            **_as_reported(request, payload),
            source_label=payload.source_label or f"API ({request.user})",
        )
    except ValidationError as exc:
        raise HttpError(422, " ".join(exc.messages)) from exc
    return Status(201, _out(_get_record(record.uuid)))


def _as_reported(request: HttpRequest, payload) -> dict:
    """What the API client reports about where and how the client acted, and who recorded it."""
    return {
        "address": _page_address(payload.address),
        "ip": _valid_ip(payload.ip),
        "ip_missing_reason": ""
        if payload.ip
        else "Recorded through the API without the client's IP address.",
        "user_agent": payload.user_agent,
        "evidence": {**_client_evidence(payload.evidence), "recorded_by": str(request.user)},
    }


@router.post(
    "/withdrawals",
    response={201: RecordOut, **errors(400, 401, 403, 404, 409, 422)},
    operation_id=_operation_id("withdraw"),
    summary="Record that a client withdrew consent",
    description=(
        "Recorded on the channel of the consent withdrawn. When that channel asks for this"
        " consent, the client's open conversations on it are told (a notice in the chat) and"
        " closed, as after a withdrawal by keyword or on the client's request."
    ),
)
def withdraw(request: HttpRequest, payload: WithdrawIn):
    _require(request, Role.ADMINISTRATOR)
    visitor = get_object_or_404(Visitor, public_id=payload.visitor_id)
    agreement = get_object_or_404(Agreement, pk=payload.consent_id)
    # Recorded on the channel of the consent withdrawn, with that channel's settings.
    channel = services.withdrawal_channel(visitor=visitor, agreement=agreement)
    try:
        with transaction.atomic():
            record = _withdraw(request, payload, visitor, agreement, channel)
    except ValidationError as exc:
        raise HttpError(409, " ".join(exc.messages)) from exc
    return Status(201, _out(_get_record(record.uuid)))


def _withdraw(request, payload: WithdrawIn, visitor, agreement, channel):
    """Record the withdrawal; the client's open chats on that channel are told and closed.

    The client's row is taken first, as every other path that writes about a client and their
    conversations does (messenger intake, erasure), so the two never wait on each other.
    """
    Visitor.objects.select_for_update().filter(pk=visitor.pk).values_list("pk", flat=True).first()
    record = services.withdraw_consent(
        visitor=visitor,
        agreement=agreement,
        origin=ConsentOrigin.API,
        source_type=SourceType.API,
        channel=channel,
        channel_settings=_settings_of(channel),
        **_as_reported(request, payload),
        source_label=f"API ({request.user})",
    )
    concluded = channel if channel is not None else visitor.channel
    # The chats go on when their channel no longer asks for this consent.
    if concluded is not None and concluded.agreement_id == agreement.pk:
        withdrawal.conclude_withdrawal(visitor=visitor, channel=concluded)
    return record


@router.api_operation(["PUT", "PATCH", "DELETE"], "/records/{record_id}", include_in_schema=False)
def refuse_change(request: HttpRequest, record_id: UUID):
    response = JsonResponse(
        {"detail": "Consent records cannot be changed or deleted; record a withdrawal instead."},
        status=405,
    )
    response["Allow"] = "GET"
    return response


# Verify registry and the signed checkpoints: /consents/verify, /consents/checkpoints.
registry.add_operations(router)

__all__ = ["router", "HttpResponse"]
