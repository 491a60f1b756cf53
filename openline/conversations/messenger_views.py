"""The messenger side of the chat window: consent note, delivery marks, Resend, withdrawal."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from openline.accounts.models import Role
from openline.accounts.permissions import StaffRequest, role_required
from openline.consent.models import ConsentState
from openline.conversations import inbound, outbox
from openline.conversations.actions import ActionError
from openline.conversations.consumers import visible_conversations
from openline.conversations.models import Message, VisitorOrigin


def _awaiting_url() -> str:
    # The Awaiting consent page belongs to the CRM; link to it when it is installed.
    try:
        return reverse("crm:awaiting")
    except NoReverseMatch:
        return ""


def conversation_extras(conversation, consent) -> dict:
    """Return what the chat window shows about a messenger client and their consent."""
    is_messenger = conversation.origin != VisitorOrigin.LIVECHAT
    visitor = conversation.visitor
    return {
        "face_name": VisitorOrigin(conversation.origin).label,
        "is_messenger": is_messenger,
        "awaiting_consent": bool(
            is_messenger and visitor.awaiting_consent_since and not visitor.erased_at
        ),
        "awaiting_url": _awaiting_url(),
        "can_record_withdrawal": bool(consent and consent.state == ConsentState.GIVEN),
        "unreachable": visitor.unreachable if is_messenger else "",
        "resend_url": reverse(
            "conversations:resend",
            kwargs={"conversation_id": conversation.id, "message_id": 0},
        ),
    }


def _visible_or_404(request: StaffRequest, conversation_id: int):
    conversation = visible_conversations(request.user).filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404("No such conversation")
    return conversation


@role_required(Role.ADMINISTRATOR, Role.OPERATOR)
@require_POST
def resend(request: StaffRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """Queue a message that was not delivered again (the Resend button)."""
    current = _visible_or_404(request, conversation_id)
    message = Message.objects.filter(pk=message_id, conversation=current).first()
    item = message.outbox.order_by("-id").first() if message is not None else None
    if item is None:
        raise Http404("No such message")
    try:
        outbox.resend(actor=request.user, item=item)
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The message is queued to be sent again.")
    return redirect("conversations:conversation", conversation_id=current.id)


@role_required(Role.ADMINISTRATOR, Role.OPERATOR)
@require_POST
def record_withdrawal(request: StaffRequest, conversation_id: int) -> HttpResponse:
    """Record the withdrawal of consent the client asked for in the chat (three-dot menu)."""
    current = _visible_or_404(request, conversation_id)
    try:
        inbound.withdraw_on_request(actor=request.user, conversation=current)
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, "The withdrawal is recorded, the client was told and the chat is closed."
        )
    return redirect("conversations:conversation", conversation_id=current.id)
