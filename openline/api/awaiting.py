"""Awaiting consent API: messenger clients who have not confirmed consent, and deleting their data.

As the console's Awaiting consent page: administrators see every channel's clients, operators
those of their Open Channels (another channel's client is 404), auditors none. Deleting goes
through the page's service; consent records are kept.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, cast
from uuid import UUID

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError

from openline.accounts.models import Role, User
from openline.accounts.permissions import has_role
from openline.conversations import naming
from openline.conversations.models import Visitor
from openline.core.api_errors import errors
from openline.core.params import MAX_ID, AsciiDigits, QueryId
from openline.crm import awaiting

router = Router(tags=["awaiting consent"])

STAFF = (Role.ADMINISTRATOR, Role.OPERATOR)


def _require(request: HttpRequest) -> User:
    if not has_role(request.user, *STAFF):
        raise HttpError(403, "Your role does not give access to clients awaiting consent.")
    return cast(User, request.user)


class AwaitingOut(Schema):
    visitor_id: UUID = Field(description="The client's pseudonymous public id")
    client: str = Field(description="The client's name as the console shows it")
    origin: str
    channel_id: int
    awaiting_since: dt.datetime
    messages: int
    crm_item_id: int | None


def _out(visitor: Visitor, names: dict) -> dict:
    link = getattr(visitor, "crm_link", None)
    return {
        "visitor_id": visitor.public_id,
        "client": naming.label(visitor, names.get(visitor.pk)),
        "origin": visitor.origin,
        "channel_id": visitor.channel_id,
        "awaiting_since": visitor.awaiting_consent_since,
        "messages": getattr(visitor, "message_count", 0),
        "crm_item_id": link.item_id if link is not None else None,
    }


class AwaitingPage(Schema):
    items: list[AwaitingOut]
    next_cursor: int | None = Field(None, description="Pass as `cursor` for the next page.")


class AwaitingFilters(Schema):
    channel: QueryId | None = None
    cursor: Annotated[int, AsciiDigits] | None = Field(None, ge=0, le=MAX_ID)
    limit: Annotated[int, AsciiDigits] = Field(100, ge=1, le=500)


@router.get(
    "",
    response={200: AwaitingPage, **errors(401, 403, 404, 422)},
    summary="List messenger clients awaiting consent, oldest first",
)
def list_awaiting(request: HttpRequest, filters: Query[AwaitingFilters]):
    user = _require(request)
    channel = None
    if filters.channel is not None:
        channel = awaiting.visible_channels(user).filter(pk=filters.channel).first()
        if channel is None:
            raise HttpError(404, "channel: no such Open Channel.")
    clients = awaiting.awaiting_clients(user=user, channel=channel).order_by("pk")
    if filters.cursor is not None:
        clients = clients.filter(pk__gt=filters.cursor)
    page = list(clients[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    names = naming.client_names([v.pk for v in page])
    return {"items": [_out(v, names) for v in page], "next_cursor": page[-1].pk if more else None}


def _client(user: User, visitor_id: UUID) -> Visitor:
    visitor = awaiting.awaiting_clients(user=user).filter(public_id=visitor_id).first()
    if visitor is None:
        raise HttpError(404, "No client with this id is awaiting consent.")
    return visitor


class AwaitingDetailOut(AwaitingOut):
    conversations: int = Field(description="Conversations that deleting would remove")
    crm_items: list[int] = Field(description="CRM items (of this client only) deleting removes")
    shared_crm_items: list[int] = Field(description="CRM items shared with others: kept")


@router.get(
    "/{visitor_id}",
    response={200: AwaitingDetailOut, **errors(401, 403, 404, 422)},
    summary="Get one client awaiting consent, with what deleting their data would remove",
)
def get_awaiting(request: HttpRequest, visitor_id: UUID):
    user = _require(request)
    visitor = _client(user, visitor_id)
    preview = awaiting.deletion_preview(visitor)
    return {
        **_out(visitor, naming.client_names([visitor.pk])),
        "conversations": preview.conversations,
        "crm_items": [i.pk for i in preview.items],
        "shared_crm_items": [i.pk for i in preview.shared_items],
    }


class DeletedOut(Schema):
    visitor_id: UUID
    deleted_crm_items: list[str] = Field(description="Labels of the CRM items deleted")


@router.delete(
    "/{visitor_id}",
    response={200: DeletedOut, **errors(401, 403, 404, 409, 422)},
    summary="Delete the data of a client awaiting consent (their consent records stay)",
)
def delete_awaiting(request: HttpRequest, visitor_id: UUID):
    user = _require(request)
    visitor = _client(user, visitor_id)
    try:
        erasures = awaiting.delete_client_data(
            actor=user, visitor=visitor, reason=awaiting.REASON_PAGE
        )
    except PermissionDenied as exc:
        raise HttpError(404, "No client with this id is awaiting consent.") from exc
    except ValidationError as exc:
        raise HttpError(409, " ".join(exc.messages)) from exc
    return {"visitor_id": visitor.public_id, "deleted_crm_items": [e.item_label for e in erasures]}
