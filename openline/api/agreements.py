"""Agreements API: consents and their immutable versions, with each version's public text URL.

Administrators create consents and reword them (a changed wording is a new version, made by
the consent services; versions are never edited). Administrators and auditors read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, cast

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.responses import Status

from openline.accounts.models import Role, User
from openline.accounts.permissions import has_role
from openline.connectors.setup import base_url
from openline.consent import services
from openline.consent.models import Agreement, AgreementText, AgreementVersion
from openline.core.api_errors import errors
from openline.core.params import MAX_ID, AsciiDigits

router = Router(tags=["agreements"])

READERS = (Role.ADMINISTRATOR, Role.AUDITOR)
MAX_TEXT = 100_000
LanguageCode = Annotated[str, Field(min_length=1, max_length=10, pattern=r"^[A-Za-z0-9_-]+$")]


def _require(request: HttpRequest, *roles: str) -> User:
    if not has_role(request.user, *roles):
        raise HttpError(403, "Your role does not give access to consents.")
    return cast(User, request.user)


def _versions():
    return AgreementVersion.objects.prefetch_related(
        Prefetch("texts", queryset=AgreementText.objects.order_by("language"))
    ).order_by("-number")


def _agreement(agreement_id: int) -> Agreement:
    found = (
        Agreement.objects.prefetch_related(Prefetch("versions", queryset=_versions()))
        .filter(pk=agreement_id)
        .first()
        if 0 < agreement_id <= MAX_ID
        else None
    )
    if found is None:
        raise HttpError(404, "No such consent.")
    return found


class TextOut(Schema):
    language: str
    text: str = Field(description="The wording as the administrator wrote it")
    html: str = Field(description="The sanitised HTML a client is shown")
    sha256: str


class VersionOut(Schema):
    number: int
    allow_html: bool
    created_at: dt.datetime
    public_url: str = Field(description="The public page that shows exactly this version")
    texts: list[TextOut]


class AgreementOut(Schema):
    id: int
    name: str
    default_language: str
    is_active: bool
    created_at: dt.datetime
    current_version: VersionOut | None


class AgreementDetailOut(AgreementOut):
    versions: list[VersionOut]


def _version_out(request: HttpRequest, version: AgreementVersion) -> dict:
    path = reverse("consent_public:version", kwargs={"code": version.public_code})
    return {
        "number": version.number,
        "allow_html": version.allow_html,
        "created_at": version.created_at,
        "public_url": base_url(request) + path,
        "texts": [
            {"language": t.language, "text": t.text, "html": t.rendered_html, "sha256": t.sha256}
            for t in version.texts.all()
        ],
    }


def _out(request: HttpRequest, agreement: Agreement, *, all_versions: bool = False) -> dict:
    versions = list(agreement.versions.all())  # prefetched, newest first
    data = {
        "id": agreement.pk,
        "name": agreement.name,
        "default_language": agreement.default_language,
        "is_active": agreement.is_active,
        "created_at": agreement.created_at,
        "current_version": _version_out(request, versions[0]) if versions else None,
    }
    if all_versions:
        data["versions"] = [_version_out(request, v) for v in versions]
    return data


class AgreementPage(Schema):
    items: list[AgreementOut]
    next_after: int | None = Field(None, description="Pass as `after` to get the next page.")


class AgreementFilters(Schema):
    active: bool | None = None
    after: Annotated[int, AsciiDigits] | None = Field(None, ge=0, le=MAX_ID)
    limit: Annotated[int, AsciiDigits] = Field(50, ge=1, le=200)


@router.get(
    "",
    response={200: AgreementPage, **errors(401, 403, 422)},
    summary="List consents with their current version",
)
def list_agreements(request: HttpRequest, filters: Query[AgreementFilters]):
    _require(request, *READERS)
    agreements = Agreement.objects.prefetch_related(Prefetch("versions", queryset=_versions()))
    if filters.active is not None:
        agreements = agreements.filter(is_active=filters.active)
    if filters.after is not None:
        agreements = agreements.filter(pk__gt=filters.after)
    page = list(agreements.order_by("pk")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {
        "items": [_out(request, a) for a in page],
        "next_after": page[-1].pk if more else None,
    }


@router.get(
    "/{agreement_id}",
    response={200: AgreementDetailOut, **errors(401, 403, 404, 422)},
    summary="Get one consent with all its versions, newest first",
)
def get_agreement(request: HttpRequest, agreement_id: int):
    _require(request, *READERS)
    return _out(request, _agreement(agreement_id), all_versions=True)


@router.get(
    "/{agreement_id}/versions",
    response={200: list[VersionOut], **errors(401, 403, 404, 422)},
    summary="List a consent's versions, newest first",
)
def list_versions(request: HttpRequest, agreement_id: int):
    _require(request, *READERS)
    return [_version_out(request, v) for v in _agreement(agreement_id).versions.all()]


@router.get(
    "/{agreement_id}/versions/{number}",
    response={200: VersionOut, **errors(401, 403, 404, 422)},
    summary="Get one version of a consent",
)
def get_version(request: HttpRequest, agreement_id: int, number: int):
    _require(request, *READERS)
    agreement = _agreement(agreement_id)
    version = next((v for v in agreement.versions.all() if v.number == number), None)
    if version is None:
        raise HttpError(404, "This consent has no such version.")
    return _version_out(request, version)


def _invalid(exc: ValidationError) -> HttpError:
    if hasattr(exc, "error_dict"):
        return HttpError(422, "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.message_dict.items()))
    return HttpError(422, f"text: {' '.join(exc.messages)}")


class AgreementIn(Schema):
    name: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=MAX_TEXT, description="The consent's wording")
    language: LanguageCode = "en"
    allow_html: bool = Field(False, description="Keep safe HTML (sanitised) in the text")
    translations: dict[LanguageCode, Annotated[str, Field(max_length=MAX_TEXT)]] = Field(
        default_factory=dict, description="More languages: language code → wording"
    )


@router.post(
    "",
    response={201: AgreementDetailOut, **errors(400, 401, 403, 422)},
    summary="Create a consent with its first version (administrators)",
)
def create_agreement(request: HttpRequest, payload: AgreementIn):
    user = _require(request, Role.ADMINISTRATOR)
    if not payload.text.strip():
        raise HttpError(422, "text: Enter the consent text.")
    if not payload.name.strip():
        raise HttpError(422, "name: Enter a name.")
    try:
        with transaction.atomic():
            agreement = services.create_agreement(
                actor=user,
                name=payload.name,
                text=payload.text,
                allow_html=payload.allow_html,
                language=payload.language,
            )
            if payload.translations:
                services.update_agreement(
                    actor=user, agreement=agreement, texts=payload.translations
                )
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return Status(201, _out(request, _agreement(agreement.pk), all_versions=True))


class VersionIn(Schema):
    texts: dict[LanguageCode, Annotated[str, Field(max_length=MAX_TEXT)]] = Field(
        description="Language code → new wording; languages left out keep theirs",
        min_length=1,
    )
    allow_html: bool | None = None
    remove_languages: list[LanguageCode] = Field(default_factory=list, max_length=50)


@router.post(
    "/{agreement_id}/versions",
    response={201: VersionOut, 200: VersionOut, **errors(400, 401, 403, 404, 422)},
    summary="Reword a consent: a new immutable version (administrators)",
    description="201 with the new version; 200 with the current one when nothing changed.",
)
def create_version(request: HttpRequest, agreement_id: int, payload: VersionIn):
    user = _require(request, Role.ADMINISTRATOR)
    agreement = _agreement(agreement_id)
    for language, text in payload.texts.items():
        if not text.strip():
            raise HttpError(422, f"texts.{language}: Enter the consent text.")
    try:
        version = services.update_agreement(
            actor=user,
            agreement=agreement,
            texts=payload.texts,
            allow_html=payload.allow_html,
            remove_languages=tuple(payload.remove_languages),
        )
    except ValidationError as exc:
        raise _invalid(exc) from exc
    fresh = _agreement(agreement.pk)
    current = next(iter(fresh.versions.all()))
    return Status(201 if version is not None else 200, _version_out(request, current))


class AgreementPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=200)
    is_active: bool | None = None


@router.patch(
    "/{agreement_id}",
    response={200: AgreementDetailOut, **errors(400, 401, 403, 404, 422)},
    summary="Rename, deactivate or reactivate a consent (administrators)",
)
def update_agreement(request: HttpRequest, agreement_id: int, payload: AgreementPatch):
    user = _require(request, Role.ADMINISTRATOR)
    agreement = _agreement(agreement_id)
    try:
        with transaction.atomic():
            if payload.name is not None:
                if not payload.name.strip():
                    raise HttpError(422, "name: Enter a name.")
                services.update_agreement(actor=user, agreement=agreement, name=payload.name)
            if payload.is_active is not None:
                services.set_agreement_active(
                    actor=user, agreement=agreement, is_active=payload.is_active
                )
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return _out(request, _agreement(agreement.pk), all_versions=True)
