"""The operator workspace: the inbox, the chat window and its three-dot menu actions."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from openline.accounts.models import Role, User
from openline.accounts.permissions import READ, StaffRequest, role_required
from openline.consent.services import current_state
from openline.conversations import actions, messenger_views
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


def _box_filter(box: str, user) -> Q:
    return {
        "open": ~Q(status=ConversationStatus.CLOSED),
        "new": Q(status=ConversationStatus.NEW),
        "waiting": Q(status=ConversationStatus.OPEN, last_message_sender=SenderKind.VISITOR),
        "mine": Q(assignee=user) & ~Q(status=ConversationStatus.CLOSED),
        "closed": Q(status=ConversationStatus.CLOSED),
    }[box]


def _inbox_context(request: StaffRequest, current=None) -> dict:
    box = request.GET.get("box", "open")
    if box not in dict(BOXES):
        box = "open"
    visible = visible_conversations(request.user)
    counts = visible.aggregate(
        **{key: Count("id", filter=_box_filter(key, request.user)) for key, _ in BOXES}
    )
    conversations = list(
        visible.filter(_box_filter(box, request.user)).order_by("-last_message_at", "-id")[:PAGE]
    )
    rows = [conversation_payload(c, unread=c.unread_count) for c in conversations]
    return {
        "section": "inbox",
        "box": box,
        "boxes": [(k, label, counts[k]) for k, label in BOXES],
        "rows": rows,
        "current": current,
        "inbox_config": {
            "box": box,
            "me": request.user.pk,
            "current": current.id if current else None,
            "inbox_url": reverse("conversations:inbox"),
        },
    }


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, methods=READ)
def inbox(request: StaffRequest) -> HttpResponse:
    """Show the conversations of the user's Open Channels, updated live."""
    return render(request, "conversations/inbox.html", _inbox_context(request))


def _visible_or_404(request: StaffRequest, conversation_id: int):
    conversation = visible_conversations(request.user).filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404("No such conversation")
    return conversation


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, methods=READ)
def conversation(request: StaffRequest, conversation_id: int) -> HttpResponse:
    """Show one chat: history, reply box, the client's page and consent, the three-dot menu."""
    current = _visible_or_404(request, conversation_id)
    context = _inbox_context(request, current)
    history = list(current.messages.select_related("author").order_by("-id")[:200])[::-1]
    consent = None
    if current.channel.agreement_id:
        consent = current_state(visitor=current.visitor, agreement=current.channel.agreement)
    context.update(
        {
            "messages_list": history,
            "history": [message_payload(m) for m in history],
            "consent": consent,
            "consent_asked": current.channel.consent_enabled,
            "targets": actions.transfer_targets(current),
            "crm_url": _crm_url(current),
        }
    )
    context["inbox_config"]["last_id"] = history[-1].id if history else 0
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
    """Close the conversation (three-dot menu)."""
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
    """Transfer the conversation to another operator of its Open Channel (three-dot menu)."""
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
