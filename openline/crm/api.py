"""CRM API: leads and contacts (list, read, create, edit), Save to CRM, export, deletion.

Every call goes through ``openline.crm.services``; permissions match the console.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, cast

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.responses import Status

from openline.accounts.models import Role, User
from openline.accounts.permissions import has_role
from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Visitor
from openline.core.api_errors import errors
from openline.core.params import AsciiDigits
from openline.crm import services
from openline.crm.creating import create_item as create_crm_item
from openline.crm.models import CrmErasure, CrmIdentity, CrmItem, IdentityKind
from openline.crm.normalize import search_digits
from openline.openchannels.models import CrmItemKind, OpenChannel

router = Router(tags=["CRM"])

MAX_ID = 2**63 - 1  # PostgreSQL bigint; larger ids cannot exist

STAFF = (Role.ADMINISTRATOR, Role.OPERATOR)


def _require(request: HttpRequest, *roles: str) -> User:
    """Return the signed-in staff user if their role is one of ``roles``; else 403."""
    if not has_role(request.user, *roles):
        raise HttpError(403, "Your role does not give access to the CRM.")
    return cast(User, request.user)


def _item(user: User, item_id: int) -> CrmItem:
    if not 0 < item_id <= MAX_ID:
        raise HttpError(404, "No such CRM item.")
    item = (
        CrmItem.objects.select_related("source_channel", "responsible").filter(pk=item_id).first()
    )
    if item is None:
        if CrmErasure.objects.filter(item_id_deleted=item_id).exists():
            raise HttpError(410, "This client's data was deleted.")
        raise HttpError(404, "No such CRM item.")
    if not services.can_see_item(user, item):
        raise HttpError(403, "This client belongs to an Open Channel you do not answer.")
    return item


class ItemOut(Schema):
    id: int
    kind: str
    label: str
    name: str
    emails: list[str]
    phones: list[str]
    messenger_identities: list[str]
    source_channel_id: int | None
    responsible_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    converted_at: dt.datetime | None


class ItemDetailOut(ItemOut):
    conversation_ids: list[int]
    consent_record_ids: list[str]


def _out(item: CrmItem, identities: list[CrmIdentity] | None = None) -> dict:
    identities = identities if identities is not None else list(item.identities.all())
    return {
        "id": item.pk,
        "kind": item.kind,
        "label": item.label,
        "name": item.name,
        "emails": [i.display for i in identities if i.kind == IdentityKind.EMAIL],
        "phones": [i.display for i in identities if i.kind == IdentityKind.PHONE],
        "messenger_identities": [i.display for i in identities if i.kind == IdentityKind.MESSENGER],
        "source_channel_id": item.source_channel_id,
        "responsible_id": item.responsible_id,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "converted_at": item.converted_at,
    }


class ItemPage(Schema):
    items: list[ItemOut]
    next_after: int | None = Field(None, description="Pass as `after` to get the next page.")


class ItemFilters(Schema):
    q: str | None = Field(
        None, max_length=200, pattern=r"^[^\x00]*$", description="Name, phone or email"
    )
    kind: Literal["lead", "contact"] | None = None
    channel: Annotated[int, AsciiDigits] | None = Field(None, ge=0, le=MAX_ID)
    after: Annotated[int, AsciiDigits] | None = Field(
        None, ge=0, le=MAX_ID, description="Items with a smaller id (keyset page)"
    )
    limit: Annotated[int, AsciiDigits] = Field(50, ge=1, le=200)


@router.get(
    "/items",
    response={200: ItemPage, **errors(401, 403, 422)},
    summary="List leads and contacts, newest first",
)
def list_items(request: HttpRequest, filters: Query[ItemFilters]):
    """List the leads and contacts the caller may see, newest first."""
    user = _require(request, *STAFF)
    items = services.visible_items(user)
    if filters.q and filters.q.strip():
        query = filters.q.strip()
        by_identity = Q(value__icontains=query.lower())
        digits = search_digits(query)
        if digits:
            by_identity |= Q(kind=IdentityKind.PHONE, value__contains=digits)
        items = items.filter(
            Q(name__icontains=query)
            | Q(pk__in=CrmIdentity.objects.filter(by_identity).values("item_id"))
        )
    if filters.kind:
        items = items.filter(kind=filters.kind)
    if filters.channel is not None:
        items = items.filter(source_channel_id=filters.channel)
    if filters.after is not None:
        items = items.filter(pk__lt=filters.after)
    page = list(items.order_by("-pk")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    identities: dict[int, list[CrmIdentity]] = {}
    for identity in CrmIdentity.objects.filter(item_id__in=[i.pk for i in page]):
        identities.setdefault(identity.item_id, []).append(identity)
    return {
        "items": [_out(item, identities.get(item.pk, [])) for item in page],
        "next_after": page[-1].pk if more and page else None,
    }


@router.get(
    "/items/{item_id}",
    response={200: ItemDetailOut, **errors(401, 403, 404, 410, 422)},
    summary="Get one lead or contact",
)
def get_item(request: HttpRequest, item_id: int):
    """Return one item with its conversations and consent record ids."""
    user = _require(request, *STAFF)
    item = _item(user, item_id)
    visitors = Visitor.objects.filter(crm_link__item=item)
    data = _out(item)
    data["conversation_ids"] = list(
        Conversation.objects.filter(visitor__in=visitors)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    data["consent_record_ids"] = [
        str(u)
        for u in ConsentRecord.objects.filter(visitor__in=visitors)
        .order_by("created_at", "id")
        .values_list("uuid", flat=True)
    ]
    return data


# ----- create and edit ---------------------------------------------------------------------

# The services name emails and phones ``email``/``phone`` when parsing; the API's fields are lists.
FIELD_NAMES = {"email": "emails", "phone": "phones", "source_channel": "source_channel_id"}
FIELD_NAMES["responsible"] = "responsible_id"


def _invalid(exc: ValidationError) -> HttpError:
    """A 422 whose message names each field that was refused."""
    if hasattr(exc, "error_dict"):
        detail = "; ".join(
            f"{FIELD_NAMES.get(field, field) if field != '__all__' else 'item'}: {' '.join(msgs)}"
            for field, msgs in exc.message_dict.items()
        )
    else:
        detail = " ".join(exc.messages)
    return HttpError(422, detail)


def _responsible(responsible_id: int | None) -> User | None:
    if responsible_id is None:
        return None
    user = User.objects.filter(
        pk=responsible_id, is_active=True, role__in=[Role.OPERATOR, Role.ADMINISTRATOR]
    ).first()
    if user is None:
        raise HttpError(422, "responsible_id: no active operator or administrator with this id.")
    return user


Emails = list[Annotated[str, Field(max_length=254)]]
Phones = list[Annotated[str, Field(max_length=40)]]


class ItemIn(Schema):
    kind: Literal["lead", "contact"]
    name: str = Field("", max_length=200)
    emails: Emails = Field(default_factory=list, max_length=20)
    phones: Phones = Field(default_factory=list, max_length=20)
    source_channel_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="Required for operators: an Open Channel they answer."
    )
    responsible_id: int | None = Field(None, ge=1, le=MAX_ID)


@router.post(
    "/items",
    response={201: ItemOut, **errors(400, 401, 403, 422)},
    summary="Create a lead or contact",
)
def create_item(request: HttpRequest, payload: ItemIn):
    """Create an item; subscribers of `crm.item.created` are told. Operators: their channels."""
    user = _require(request, *STAFF)
    channel = None
    if payload.source_channel_id is not None:
        channel = OpenChannel.objects.filter(pk=payload.source_channel_id).first()
        if channel is None:
            raise HttpError(422, "source_channel_id: no Open Channel with this id.")
    try:
        item = create_crm_item(
            actor=user,
            kind=payload.kind,
            name=payload.name,
            emails=payload.emails,
            phones=payload.phones,
            source_channel=channel,
            responsible=_responsible(payload.responsible_id),
        )
    except PermissionDenied as exc:
        raise HttpError(403, str(exc)) from exc
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return Status(201, _out(item))


class ItemPatch(Schema):
    name: str | None = Field(None, max_length=200)
    kind: Literal["contact"] | None = Field(
        None, description="`contact` converts a lead; a contact stays a contact."
    )
    emails: Emails | None = Field(None, max_length=20, description="Replaces every email.")
    phones: Phones | None = Field(None, max_length=20, description="Replaces every phone.")
    responsible_id: int | None = Field(None, ge=1, le=MAX_ID, description="`null`: nobody.")


@router.patch(
    "/items/{item_id}",
    response={200: ItemOut, **errors(400, 401, 403, 404, 410, 422)},
    summary="Change a lead or contact: only the fields given; `kind: contact` converts a lead",
)
def update_item(request: HttpRequest, item_id: int, payload: ItemPatch):
    """Edit as the console's edit page does; every change is in the item's history."""
    user = _require(request, *STAFF)
    item = _item(user, item_id)
    given = payload.model_fields_set
    for field in ("name", "emails", "phones"):
        if field in given and getattr(payload, field) is None:
            raise HttpError(422, f"{field}: may not be null.")
    try:
        with transaction.atomic():
            if given & {"name", "emails", "phones", "responsible_id"}:
                current = list(item.identities.all())
                item = services.update_item(
                    actor=user,
                    item=item,
                    name=payload.name if payload.name is not None else item.name,
                    responsible=(
                        _responsible(payload.responsible_id)
                        if "responsible_id" in given
                        else item.responsible
                    ),
                    emails=(
                        payload.emails
                        if payload.emails is not None
                        else [i.display for i in current if i.kind == IdentityKind.EMAIL]
                    ),
                    phones=(
                        payload.phones
                        if payload.phones is not None
                        else [i.display for i in current if i.kind == IdentityKind.PHONE]
                    ),
                )
            if payload.kind == CrmItemKind.CONTACT and item.kind == CrmItemKind.LEAD:
                item = services.convert_to_contact(actor=user, item=item)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    item.refresh_from_db()
    return _out(item)


class SaveIn(Schema):
    name: str = Field("", max_length=200)
    email: str = Field("", max_length=254)
    phone: str = Field("", max_length=40)
    kind: Literal["lead", "contact"] | None = Field(
        None, description="Defaults to the Open Channel's “Save new clients to CRM as”."
    )


class SaveOut(Schema):
    item: ItemOut
    created: bool
    already_saved: bool
    matched_by: str | None
    consent_records_added: list[str]


@router.post(
    "/conversations/{conversation_id}/save",
    response={200: SaveOut, 201: SaveOut, **errors(400, 401, 403, 404, 409, 422)},
    summary="Save to CRM: save the chat's client and link their consent",
)
def save_conversation(request: HttpRequest, conversation_id: int, payload: SaveIn):
    """Save the chat's client to the CRM; 201 when a new item was created."""
    user = _require(request, *STAFF)
    if not 0 < conversation_id <= MAX_ID:
        raise HttpError(404, "No such conversation.")
    conversation = (
        Conversation.objects.select_related("visitor", "channel").filter(pk=conversation_id).first()
    )
    if conversation is None:
        raise HttpError(404, "No such conversation.")
    try:
        result = services.save_conversation_to_crm(
            actor=user,
            conversation=conversation,
            name=payload.name,
            email=payload.email,
            phone=payload.phone,
            kind=payload.kind,
            base_url=services.public_base_url(request),
        )
    except PermissionDenied as exc:
        raise HttpError(403, str(exc)) from exc
    except ValidationError as exc:
        if getattr(exc, "code", None) == "erased":
            raise HttpError(409, " ".join(exc.messages)) from exc
        if hasattr(exc, "error_dict"):
            detail = "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.message_dict.items())
        else:
            detail = " ".join(exc.messages)
        raise HttpError(422, detail) from exc
    body = {
        "item": _out(result.item),
        "created": result.created,
        "already_saved": result.already_saved,
        "matched_by": result.match.matched_by if result.match else None,
        "consent_records_added": [str(r.uuid) for r in result.consent_records],
    }
    return Status(201 if result.created else 200, body)


@router.get(
    "/items/{item_id}/export",
    response={200: dict, **errors(401, 403, 404, 410, 422)},
    summary="Subject access export (GDPR Art. 15): everything held about the client",
)
def export_item(request: HttpRequest, item_id: int):
    """Return everything Openline holds about the client (administrators)."""
    user = _require(request, Role.ADMINISTRATOR)
    return services.subject_access_export(actor=user, item=_item(user, item_id))


class ErasureOut(Schema):
    item_label: str
    deleted_at: dt.datetime
    counts: dict
    visitor_ids: list[str]


@router.delete(
    "/items/{item_id}",
    response={200: ErasureOut, **errors(401, 403, 404, 410, 422)},
    summary="Delete client data: the item, the profile's personal data and the messages",
)
def delete_item(request: HttpRequest, item_id: int):
    """Delete the client's data; consent records are kept; 410 when already deleted."""
    user = _require(request, *STAFF)
    item = _item(user, item_id)
    if not services.can_delete(user, item):
        raise HttpError(403, "Only an administrator can delete this client's data.")
    try:
        erasure = services.delete_client_data(actor=user, item_id=item.pk)
    except services.AlreadyDeleted as exc:
        raise HttpError(410, "This client's data was already deleted.") from exc
    return {
        "item_label": erasure.item_label,
        "deleted_at": erasure.created_at,
        "counts": erasure.counts,
        "visitor_ids": erasure.visitor_public_ids,
    }
