"""Private notes and canned replies: the console's reply-box tools, over the API.

Notes follow the console: administrators and the Open Channel's operators read and write a
conversation's notes (another channel's conversation is 404, as if it did not exist); auditors
are refused. A note is never part of what the client sees. ``actions.add_note`` is the only
write path, idempotent on ``client_id`` exactly as in the console.

Canned replies follow ``conversations.canned``: everyone who answers chats lists their own and
the shared ones; shared ones are managed by administrators only, personal ones by their owner
(administrators may clean up anyone's); another person's personal reply is 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, cast

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.responses import Status

from openline.accounts.models import Role, User
from openline.accounts.permissions import has_role
from openline.conversations import actions, canned
from openline.conversations.consumers import visible_conversations
from openline.conversations.models import CannedReply, Conversation, ConversationNote
from openline.core.api_errors import errors
from openline.core.params import MAX_ID, AsciiDigits

notes_router = Router(tags=["conversations"])
canned_router = Router(tags=["canned replies"])

STAFF = (Role.ADMINISTRATOR, Role.OPERATOR)
NOTE_STATUS = {"empty": 422, "too_long": 422, "bad_client_id": 422}
NOTE_FIELD = {"empty": "text", "too_long": "text", "bad_client_id": "client_id"}


def _require(request: HttpRequest, what: str) -> User:
    if not has_role(request.user, *STAFF):
        raise HttpError(403, f"Your role does not give access to {what}.")
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


class NoteOut(Schema):
    id: int
    conversation_id: int
    author_id: int | None
    author: str = Field(description="The author's name as the console shows it")
    text: str
    client_id: str
    created_at: dt.datetime


def _note_out(note: ConversationNote) -> dict:
    return {
        "id": note.pk,
        "conversation_id": note.conversation_id,
        "author_id": note.author_id,
        "author": str(note.author) if note.author else "",
        "text": note.text,
        "client_id": note.client_id,
        "created_at": note.created_at,
    }


class NotePage(Schema):
    items: list[NoteOut]
    next_cursor: int | None = Field(None, description="Pass as `cursor` for the next (older) page.")


class NoteFilters(Schema):
    cursor: Annotated[int, AsciiDigits] | None = Field(None, ge=0, le=MAX_ID)
    limit: Annotated[int, AsciiDigits] = Field(50, ge=1, le=200)


@notes_router.get(
    "/{conversation_id}",
    response={200: NotePage, **errors(401, 403, 404, 422)},
    summary="List a conversation's private notes, newest first",
)
def list_notes(request: HttpRequest, conversation_id: int, filters: Query[NoteFilters]):
    user = _require(request, "conversation notes")
    conversation = _conversation(user, conversation_id)
    notes = ConversationNote.objects.filter(conversation=conversation).select_related("author")
    if filters.cursor is not None:
        notes = notes.filter(pk__lt=filters.cursor)
    page = list(notes.order_by("-pk")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {"items": [_note_out(n) for n in page], "next_cursor": page[-1].pk if more else None}


class NoteIn(Schema):
    text: str = Field(min_length=1, max_length=actions.MAX_TEXT)
    client_id: str = Field(
        "",
        max_length=actions.MAX_CLIENT_ID,
        description="Your id for this note: sending it again returns the stored note",
    )


@notes_router.post(
    "/{conversation_id}",
    response={201: NoteOut, 200: NoteOut, **errors(400, 401, 403, 404, 422)},
    summary="Add a private note (never shown to the client)",
    description="201 with the new note; 200 with the stored one when `client_id` was sent "
    "before. The channel's operators see it at once in their inbox.",
)
def add_note(request: HttpRequest, conversation_id: int, payload: NoteIn):
    user = _require(request, "conversation notes")
    conversation = _conversation(user, conversation_id)
    try:
        note, created = actions.add_note(
            conversation=conversation, actor=user, text=payload.text, client_id=payload.client_id
        )
    except actions.ActionError as exc:
        status = NOTE_STATUS.get(exc.code)
        if status is None:
            raise HttpError(404, "No such conversation.") from exc
        raise HttpError(status, f"{NOTE_FIELD[exc.code]}: {exc.message}") from exc
    return Status(201 if created else 200, _note_out(note))


class CannedOut(Schema):
    id: int
    title: str
    shortcut: str = Field(description="Typed after / in the reply box")
    text: str
    shared: bool = Field(description="Offered to everyone (managed by administrators)")
    owner_id: int | None
    can_manage: bool = Field(description="Whether the caller may change or delete it")
    created_at: dt.datetime
    updated_at: dt.datetime


def _canned_out(user: User, reply: CannedReply) -> dict:
    return {
        **canned.as_json(reply),
        "owner_id": reply.owner_id,
        "can_manage": canned.can_manage(user, reply),
        "created_at": reply.created_at,
        "updated_at": reply.updated_at,
    }


def _reply(user: User, reply_id: int) -> CannedReply:
    replies = (
        CannedReply.objects.all() if user.role == Role.ADMINISTRATOR else canned.offered_to(user)
    )
    found = replies.filter(pk=reply_id).first() if 0 < reply_id <= MAX_ID else None
    if found is None:
        raise HttpError(404, "No such canned reply.")
    return found


def _invalid(exc: ValidationError) -> HttpError:
    parts = [f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
    return HttpError(422, "; ".join(parts))


class CannedPage(Schema):
    items: list[CannedOut]
    next_after: int | None = Field(None, description="Pass as `after` to get the next page.")


class CannedFilters(Schema):
    shared: bool | None = Field(None, description="Only shared (true) or only your own (false)")
    after: Annotated[int, AsciiDigits] | None = Field(
        None, ge=0, le=MAX_ID, description="Replies with a greater id (keyset page)"
    )
    limit: Annotated[int, AsciiDigits] = Field(100, ge=1, le=500)


@canned_router.get(
    "",
    response={200: CannedPage, **errors(401, 403, 422)},
    summary="List the canned replies offered to the caller: their own and the shared ones",
)
def list_canned(request: HttpRequest, filters: Query[CannedFilters]):
    user = _require(request, "canned replies")
    replies = canned.offered_to(user)
    if filters.shared is not None:
        replies = replies.filter(owner__isnull=filters.shared)
    if filters.after is not None:
        replies = replies.filter(pk__gt=filters.after)
    page = list(replies.order_by("pk")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {
        "items": [_canned_out(user, r) for r in page],
        "next_after": page[-1].pk if more else None,
    }


@canned_router.get(
    "/{reply_id}",
    response={200: CannedOut, **errors(401, 403, 404, 422)},
    summary="Get one canned reply",
)
def get_canned(request: HttpRequest, reply_id: int):
    user = _require(request, "canned replies")
    return _canned_out(user, _reply(user, reply_id))


class CannedIn(Schema):
    title: str = Field(max_length=canned.MAX_TITLE)
    shortcut: str = Field(max_length=canned.MAX_SHORTCUT + 1)
    text: str = Field(max_length=canned.MAX_TEXT)
    shared: bool = Field(False, description="Offer it to everyone (administrators only)")


class CannedPatch(Schema):
    title: str | None = Field(None, max_length=canned.MAX_TITLE)
    shortcut: str | None = Field(None, max_length=canned.MAX_SHORTCUT + 1)
    text: str | None = Field(None, max_length=canned.MAX_TEXT)


@canned_router.post(
    "",
    response={201: CannedOut, **errors(400, 401, 403, 422)},
    summary="Create a personal canned reply, or a shared one (administrators)",
)
def create_canned(request: HttpRequest, payload: CannedIn):
    user = _require(request, "canned replies")
    try:
        reply = canned.create_canned_reply(
            actor=user,
            title=payload.title,
            shortcut=payload.shortcut,
            text=payload.text,
            shared=payload.shared,
        )
    except PermissionDenied as exc:
        raise HttpError(403, str(exc)) from exc
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return Status(201, _canned_out(user, reply))


@canned_router.patch(
    "/{reply_id}",
    response={200: CannedOut, **errors(400, 401, 403, 404, 422)},
    summary="Change a canned reply's title, shortcut or text (its scope stays)",
)
def update_canned(request: HttpRequest, reply_id: int, payload: CannedPatch):
    user = _require(request, "canned replies")
    reply = _reply(user, reply_id)
    try:
        canned.update_canned_reply(
            actor=user,
            reply=reply,
            title=reply.title if payload.title is None else payload.title,
            shortcut=reply.shortcut if payload.shortcut is None else payload.shortcut,
            text=reply.text if payload.text is None else payload.text,
        )
    except PermissionDenied as exc:
        raise HttpError(403, str(exc)) from exc
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return _canned_out(user, _reply(user, reply_id))


@canned_router.delete(
    "/{reply_id}",
    response={204: None, **errors(401, 403, 404, 422)},
    summary="Delete a canned reply",
)
def delete_canned(request: HttpRequest, reply_id: int):
    user = _require(request, "canned replies")
    reply = _reply(user, reply_id)
    try:
        canned.delete_canned_reply(actor=user, reply=reply)
    except PermissionDenied as exc:
        raise HttpError(403, str(exc)) from exc
    return Status(204, None)
