"""Conversations API: live chat and messenger conversations, their messages, replies.

The same rules as the console's websocket: administrators see and answer every conversation,
operators those of their Open Channels (another channel's is 404, as if it did not exist),
auditors none. Replies, closing and transfers go through ``conversations.actions``, so a reply
reaches the live chat client's websocket, or a messenger client through the outbox.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, cast

from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.responses import Status

from openline.accounts.models import Role, User
from openline.accounts.permissions import has_role
from openline.conversations import actions, naming, search
from openline.conversations.consumers import visible_conversations
from openline.conversations.models import (
    Conversation,
    ConversationStatus,
    Message,
    VisitorOrigin,
)
from openline.core.api_errors import errors
from openline.core.params import MAX_ID, AsciiDigits, QueryId

router = Router(tags=["conversations"])

STAFF = (Role.ADMINISTRATOR, Role.OPERATOR)
# ActionError codes and the status each answers.
ACTION_STATUS = {
    "forbidden": 404,
    "conversation_closed": 409,
    "empty": 422,
    "too_long": 422,
    "bad_client_id": 422,
    "bad_target": 422,
}
ACTION_FIELD = {
    "empty": "text",
    "too_long": "text",
    "bad_client_id": "client_id",
    "bad_target": "operator_id",
}


def _require(request: HttpRequest) -> User:
    if not has_role(request.user, *STAFF):
        raise HttpError(403, "Your role does not give access to conversations.")
    return cast(User, request.user)


def _conversation(user: User, conversation_id: int) -> Conversation:
    found = (
        visible_conversations(user).filter(pk=conversation_id).first()
        if 0 < conversation_id <= MAX_ID
        else None
    )
    if found is None:
        raise HttpError(404, "No such conversation.")
    return found


def _refused(exc: actions.ActionError) -> HttpError:
    status = ACTION_STATUS.get(exc.code, 409)
    if status == 404:
        return HttpError(404, "No such conversation.")
    field = ACTION_FIELD.get(exc.code)
    return HttpError(status, f"{field}: {exc.message}" if field else exc.message)


class ConversationOut(Schema):
    id: int
    channel_id: int
    origin: str = Field(description="livechat, telegram, whatsapp, facebook or viber")
    status: str = Field(description="new, open or closed")
    client: str = Field(description="The client's name as the console shows it")
    visitor_id: str = Field(description="The client's pseudonymous public id")
    assignee_id: int | None
    page_url: str
    started_at: dt.datetime
    last_message_at: dt.datetime | None
    last_message_preview: str
    unread_count: int
    closed_at: dt.datetime | None
    closed_reason: str


def _out(conversation: Conversation, names: dict | None = None) -> dict:
    visitor = conversation.visitor
    if names is None:
        names = naming.client_names([visitor.pk])
    return {
        "id": conversation.pk,
        "channel_id": conversation.channel_id,
        "origin": conversation.origin,
        "status": conversation.status,
        "client": naming.label(visitor, names.get(visitor.pk)),
        "visitor_id": str(visitor.public_id),
        "assignee_id": conversation.assignee_id,
        "page_url": conversation.page_url,
        "started_at": conversation.started_at,
        "last_message_at": conversation.last_message_at,
        "last_message_preview": "" if visitor.erased_at else conversation.last_message_preview,
        "unread_count": conversation.unread_count,
        "closed_at": conversation.closed_at,
        "closed_reason": conversation.closed_reason,
    }


class ConversationPage(Schema):
    items: list[ConversationOut]
    next_cursor: int | None = Field(None, description="Pass as `cursor` for the next (older) page.")


class ConversationFilters(Schema):
    channel: QueryId | None = None
    status: ConversationStatus | None = None
    origin: VisitorOrigin | None = None
    assignee: Annotated[str, Field(pattern=r"^([0-9]{1,19}|me|none)$")] | None = Field(
        None, description="An operator's id, `me` or `none` (unassigned)"
    )
    since: dt.date | None = Field(None, description="Active on or after this day, YYYY-MM-DD")
    q: str | None = Field(
        None,
        max_length=search.MAX_QUERY,
        pattern=r"^[^\x00]*$",
        description="Client name, e-mail, phone or message text",
    )
    cursor: Annotated[int, AsciiDigits] | None = Field(None, ge=0, le=MAX_ID)
    limit: Annotated[int, AsciiDigits] = Field(50, ge=1, le=200)


@router.get(
    "",
    response={200: ConversationPage, **errors(401, 403, 422)},
    summary="List conversations across live chat and messengers, newest first",
)
def list_conversations(request: HttpRequest, filters: Query[ConversationFilters]):
    user = _require(request)
    conversations = visible_conversations(user)
    if filters.channel is not None:
        conversations = conversations.filter(channel_id=filters.channel)
    if filters.status:
        conversations = conversations.filter(status=filters.status)
    if filters.origin:
        conversations = conversations.filter(origin=filters.origin)
    if filters.assignee == "me":
        conversations = conversations.filter(assignee=user)
    elif filters.assignee == "none":
        conversations = conversations.filter(assignee__isnull=True)
    elif filters.assignee:
        conversations = conversations.filter(assignee_id=int(filters.assignee))
    if filters.since:
        start = dt.datetime.combine(
            filters.since, dt.time.min, tzinfo=timezone.get_current_timezone()
        )
        conversations = conversations.filter(
            Q(last_message_at__gte=start) | Q(started_at__gte=start)
        )
    query = search.clean_query(filters.q)
    if query:
        # The matching of the console's search: the client (CRM or own details) or a message.
        by_text = Message.objects.filter(text__icontains=query).values("conversation_id")
        conversations = conversations.filter(
            Q(visitor_id__in=naming.visitors_matching(query)) | Q(pk__in=by_text)
        )
    if filters.cursor is not None:
        conversations = conversations.filter(pk__lt=filters.cursor)
    page = list(conversations.order_by("-pk")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    names = naming.client_names([c.visitor_id for c in page])
    return {
        "items": [_out(c, names) for c in page],
        "next_cursor": page[-1].pk if more else None,
    }


@router.get(
    "/{conversation_id}",
    response={200: ConversationOut, **errors(401, 403, 404, 422)},
    summary="Get one conversation",
)
def get_conversation(request: HttpRequest, conversation_id: int):
    user = _require(request)
    return _out(_conversation(user, conversation_id))


class MessageOut(Schema):
    id: int
    conversation_id: int
    sender: str = Field(description="visitor, operator or system")
    author_id: int | None
    text: str
    client_id: str
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    read_at: dt.datetime | None
    delivery_state: str = Field(description="Messengers: queued, sent, delivered, read, failed")
    delivery_error: str


def _message_out(message: Message) -> dict:
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "sender": message.sender,
        "author_id": message.author_id,
        "text": message.text,
        "client_id": message.client_id,
        "created_at": message.created_at,
        "delivered_at": message.delivered_at,
        "read_at": message.read_at,
        "delivery_state": message.delivery_state,
        "delivery_error": message.delivery_error,
    }


class MessagePage(Schema):
    items: list[MessageOut]
    next_cursor: int | None = Field(None, description="Pass as `cursor` for the next page.")


class MessageFilters(Schema):
    cursor: Annotated[int, AsciiDigits] | None = Field(None, ge=0, le=MAX_ID)
    order: Literal["asc", "desc"] = Field("asc", description="Oldest (asc) or newest first")
    limit: Annotated[int, AsciiDigits] = Field(100, ge=1, le=500)


@router.get(
    "/{conversation_id}/messages",
    response={200: MessagePage, **errors(401, 403, 404, 422)},
    summary="List a conversation's messages",
)
def list_messages(request: HttpRequest, conversation_id: int, filters: Query[MessageFilters]):
    user = _require(request)
    conversation = _conversation(user, conversation_id)
    messages = Message.objects.filter(conversation=conversation)
    if filters.order == "asc":
        if filters.cursor is not None:
            messages = messages.filter(pk__gt=filters.cursor)
        messages = messages.order_by("pk")
    else:
        if filters.cursor is not None:
            messages = messages.filter(pk__lt=filters.cursor)
        messages = messages.order_by("-pk")
    page = list(messages[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {
        "items": [_message_out(m) for m in page],
        "next_cursor": page[-1].pk if more else None,
    }


class ReplyIn(Schema):
    text: str = Field(min_length=1, max_length=actions.MAX_TEXT)
    client_id: str = Field(
        "",
        max_length=actions.MAX_CLIENT_ID,
        description="Your id for this reply: sending it again returns the stored reply",
    )


@router.post(
    "/{conversation_id}/messages",
    response={201: MessageOut, 200: MessageOut, **errors(400, 401, 403, 404, 409, 422)},
    summary="Send a reply as the calling operator",
    description="201 with the new message; 200 with the stored one when `client_id` was sent "
    "before. Live chat clients get it at once; messenger clients through the outbox.",
)
def send_reply(request: HttpRequest, conversation_id: int, payload: ReplyIn):
    user = _require(request)
    conversation = _conversation(user, conversation_id)
    try:
        message, created = actions.send_reply(
            conversation=conversation, actor=user, text=payload.text, client_id=payload.client_id
        )
    except actions.ActionError as exc:
        raise _refused(exc) from exc
    message.refresh_from_db()  # a messenger reply was queued meanwhile: its delivery state
    return Status(201 if created else 200, _message_out(message))


class CloseIn(Schema):
    reason: str = Field("", max_length=200)


@router.post(
    "/{conversation_id}/close",
    response={200: ConversationOut, **errors(400, 401, 403, 404, 422)},
    summary="Close a conversation (closing a closed one changes nothing)",
)
def close_conversation(request: HttpRequest, conversation_id: int, payload: CloseIn):
    user = _require(request)
    conversation = _conversation(user, conversation_id)
    try:
        actions.close_conversation(conversation=conversation, actor=user, reason=payload.reason)
    except actions.ActionError as exc:
        raise _refused(exc) from exc
    return _out(_conversation(user, conversation_id))


class TransferIn(Schema):
    operator_id: int = Field(ge=1, le=MAX_ID, description="An operator of the Open Channel")


class OperatorOut(Schema):
    id: int
    name: str


@router.get(
    "/{conversation_id}/transfer-targets",
    response={200: list[OperatorOut], **errors(401, 403, 404, 422)},
    summary="List the operators a conversation can be transferred to",
)
def transfer_targets(request: HttpRequest, conversation_id: int):
    user = _require(request)
    conversation = _conversation(user, conversation_id)
    return [
        {"id": u.pk, "name": u.get_full_name() or u.get_username()}
        for u in actions.transfer_targets(conversation)
    ]


@router.post(
    "/{conversation_id}/transfer",
    response={200: ConversationOut, **errors(400, 401, 403, 404, 409, 422)},
    summary="Hand a conversation to another operator of its Open Channel",
)
def transfer_conversation(request: HttpRequest, conversation_id: int, payload: TransferIn):
    user = _require(request)
    conversation = _conversation(user, conversation_id)
    target = User.objects.filter(pk=payload.operator_id).first()
    try:
        actions.transfer_conversation(conversation=conversation, actor=user, to_user=target)
    except actions.ActionError as exc:
        raise _refused(exc) from exc
    return _out(_conversation(user, conversation_id))
