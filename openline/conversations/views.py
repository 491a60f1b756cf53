"""The operator workspace: the inbox, search, the chat window with its sidebar and actions."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from openline.accounts.models import Role, User
from openline.accounts.permissions import READ, StaffRequest, role_required
from openline.conversations import actions, messenger_views, naming, notes, search, sidebar
from openline.conversations.consumers import visible_conversations
from openline.conversations.events import conversation_payload, message_payload
from openline.conversations.models import ConversationStatus, SenderKind

BOXES = [
    ("open", "All open"),
    ("new", "New"),
    ("waiting", "Waiting"),
    ("mine", "Mine"),
    ("closed", "Closed"),
]
PAGE = 100
HISTORY = 200


def _box_filter(box: str, user) -> Q:
    return {
        "open": ~Q(status=ConversationStatus.CLOSED),
        "new": Q(status=ConversationStatus.NEW),
        "waiting": Q(status=ConversationStatus.OPEN, last_message_sender=SenderKind.VISITOR),
        "mine": Q(assignee=user) & ~Q(status=ConversationStatus.CLOSED),
        "closed": Q(status=ConversationStatus.CLOSED),
    }[box]


def _rows(conversations, names: dict) -> list[dict]:
    # One name lookup for the whole page (``names``), never one per row.
    return [
        conversation_payload(c, unread=c.unread_count, known=names.get(c.visitor_id))
        for c in conversations
    ]


def _inbox_context(request: StaffRequest, current=None) -> dict:
    box = request.GET.get("box", "open")
    if box not in dict(BOXES):
        box = "open"
    query = search.clean_query(request.GET.get("q"))
    visible = visible_conversations(request.user)
    counts = visible.aggregate(
        **{key: Count("id", filter=_box_filter(key, request.user)) for key, _ in BOXES}
    )
    snippets: dict[int, search.Snippet | None] = {}
    if query:
        hits = search.search_conversations(visible, query, limit=PAGE)
        conversations = [c for c, _ in hits]
        snippets = {c.pk: s for c, s in hits}
    else:
        conversations = list(
            visible.filter(_box_filter(box, request.user)).order_by("-last_message_at", "-id")[
                :PAGE
            ]
        )
    ids = [c.visitor_id for c in conversations]
    if current is not None:
        ids.append(current.visitor_id)
    names = naming.client_names(ids)
    rows = _rows(conversations, names)
    for row in rows:
        row["snippet"] = snippets.get(row["id"])
    return {
        "section": "inbox",
        "box": box,
        "query": query,
        "boxes": [(k, label, counts[k]) for k, label in BOXES],
        "rows": rows,
        "current": current,
        "names": names,
        "visible": visible,
        "inbox_config": {
            "box": box,
            "search": bool(query),
            "me": request.user.pk,
            "current": current.id if current else None,
            "inbox_url": reverse("conversations:inbox"),
            "canned_url": reverse("conversations:canned_json"),
        },
    }


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, methods=READ)
def inbox(request: StaffRequest) -> HttpResponse:
    """Show the conversations of the user's Open Channels, updated live, or search them."""
    return render(request, "conversations/inbox.html", _inbox_context(request))


def _visible_or_404(request: StaffRequest, conversation_id: int):
    conversation = visible_conversations(request.user).filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404("No such conversation")
    return conversation


def _timeline(history: list, note_list: list) -> list[dict]:
    """Interleave messages and private notes by time (notes older than the history stay out)."""
    oldest: datetime | None = history[0].created_at if len(history) >= HISTORY else None
    entries = [{"kind": "message", "item": m, "at": m.created_at} for m in history]
    entries += [
        {"kind": "note", "item": n, "at": n.created_at}
        for n in note_list
        if oldest is None or n.created_at >= oldest
    ]
    entries.sort(key=lambda e: (e["at"], 0 if e["kind"] == "message" else 1, e["item"].id))
    return entries


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, methods=READ)
def conversation(request: StaffRequest, conversation_id: int) -> HttpResponse:
    """Show one chat: history with notes, reply box, the client sidebar, Close and Transfer."""
    current = _visible_or_404(request, conversation_id)
    context = _inbox_context(request, current)
    history = list(current.messages.select_related("author").order_by("-id")[:HISTORY])[::-1]
    note_list = notes.notes_between(current)
    known = context["names"].get(current.visitor_id)
    panel = sidebar.sidebar(current, user=request.user, visible=context["visible"], known=known)
    consent = panel["consent"].get("current")
    context.update(
        {
            "client_label": panel["name"],
            "timeline": _timeline(history, note_list),
            "history": [message_payload(m) for m in history],
            "client": panel,
            "consent": consent,
            "consent_asked": panel["consent"].get("asked"),
            "targets": actions.transfer_targets(current),
            "crm_url": _crm_url(current),
            "can_note": notes.can_write_notes(request.user, current),
        }
    )
    context["inbox_config"]["last_id"] = history[-1].id if history else 0
    context["inbox_config"]["last_note_id"] = note_list[-1].id if note_list else 0
    # Messenger chats: the consent note, delivery marks, Resend and withdrawal (brief M).
    context.update(messenger_views.conversation_extras(current, consent))
    context["inbox_config"]["messenger"] = context["is_messenger"]
    context["inbox_config"]["resend_url"] = context["resend_url"]
    return render(request, "conversations/inbox.html", context)


def _crm_url(conversation) -> str:
    # The CRM side ("Save to CRM") is its own page; this menu only links to it.
    try:
        return reverse("crm:save_conversation", kwargs={"conversation_id": conversation.id})
    except NoReverseMatch:
        return f"/console/crm/conversations/{conversation.id}/save/"


@role_required(Role.ADMINISTRATOR, Role.OPERATOR)
@require_POST
def close(request: StaffRequest, conversation_id: int) -> HttpResponse:
    """Close the conversation (the Close button, after confirmation)."""
    current = _visible_or_404(request, conversation_id)
    try:
        actions.close_conversation(conversation=current, actor=request.user)
    except actions.ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Conversation closed.")
    return redirect("conversations:conversation", conversation_id=current.id)


@role_required(Role.ADMINISTRATOR, Role.OPERATOR)
@require_POST
def transfer(request: StaffRequest, conversation_id: int) -> HttpResponse:
    """Transfer the conversation to another operator of its Open Channel (the Transfer dialog)."""
    current = _visible_or_404(request, conversation_id)
    try:
        target = get_object_or_404(User, pk=int(request.POST.get("operator", "")))
    except (ValueError, TypeError):
        raise Http404("Choose an operator") from None
    try:
        actions.transfer_conversation(conversation=current, actor=request.user, to_user=target)
    except actions.ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Conversation transferred to {target}.")
    return redirect("conversations:conversation", conversation_id=current.id)


@role_required(Role.ADMINISTRATOR, Role.OPERATOR)
@require_POST
def add_note(request: StaffRequest, conversation_id: int) -> HttpResponse:
    """Store a private note (the note form without the live connection)."""
    current = _visible_or_404(request, conversation_id)
    try:
        actions.add_note(
            conversation=current,
            actor=request.user,
            text=request.POST.get("text", ""),
            client_id=request.POST.get("client_id", ""),
        )
    except actions.ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Private note saved.")
    return redirect("conversations:conversation", conversation_id=current.id)
