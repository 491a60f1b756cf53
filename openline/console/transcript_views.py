"""A conversation's read-only transcript: what auditors open from a consent record.

Administrators read any conversation; operators only those of their Open Channels; auditors
only conversations a consent record points to (the evidence they audit, not every chat), and
each auditor's reading is logged; anyone else gets 404 (the conversation's existence is not
confirmed). Nothing here writes: no reply box, no marks, no notes.
"""

from __future__ import annotations

import logging

from django.db.models import CharField, Exists, OuterRef, Q
from django.db.models.functions import Cast
from django.http import Http404, HttpResponse
from django.shortcuts import render

from openline.accounts.models import Role
from openline.accounts.permissions import ALL_ROLES, READ, StaffRequest, role_required
from openline.consent.models import ConsentRecord, SourceType
from openline.conversations import naming
from openline.conversations.models import Conversation, SenderKind

logger = logging.getLogger("openline.audit.transcripts")

# The newest messages of a very long conversation; older ones are summarised by a count.
MESSAGE_LIMIT = 1000


def _conversation(user, conversation_id: int) -> Conversation:
    conversations = Conversation.objects.select_related("channel", "visitor", "assignee")
    if user.role == Role.OPERATOR:
        conversations = conversations.filter(channel__operators=user)
    elif user.role == Role.AUDITOR:
        # The conversation a record names, directly or as its source (Save to CRM).
        conversations = conversations.filter(
            Exists(ConsentRecord.objects.filter(conversation=OuterRef("pk")))
            | Exists(
                ConsentRecord.objects.filter(
                    Q(source_type=SourceType.CONVERSATION),
                    source_id=Cast(OuterRef("pk"), CharField()),
                )
            )
        )
    elif user.role != Role.ADMINISTRATOR:
        conversations = conversations.none()
    conversation = conversations.filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404("Unknown conversation")
    return conversation


@role_required(*ALL_ROLES, methods=READ)
def transcript(request: StaffRequest, conversation_id: int) -> HttpResponse:
    """Show one conversation's messages and its client's consent records, read-only."""
    conversation = _conversation(request.user, conversation_id)
    if request.user.role == Role.AUDITOR:
        logger.info("transcript read: conversation=%s auditor=%s", conversation.pk, request.user.pk)
    visitor = conversation.visitor
    known = naming.client_names([visitor.pk]).get(visitor.pk)
    total = conversation.messages.count()
    messages = list(
        conversation.messages.select_related("author").order_by("-created_at", "-id")[
            :MESSAGE_LIMIT
        ]
    )
    messages.reverse()
    records = (
        ConsentRecord.objects.filter(visitor=visitor.pk)
        .select_related("agreement", "version")
        .order_by("-created_at", "-id")[:100]
    )
    return render(
        request,
        "console/transcript.html",
        {
            "conversation": conversation,
            "client_label": naming.label(visitor, known),
            "pseudonym": str(visitor),
            "messages_shown": messages,
            "hidden_count": max(total - len(messages), 0),
            "records": records,
            "SenderKind": SenderKind,
            "can_open_inbox": request.user.role in (Role.ADMINISTRATOR, Role.OPERATOR),
            "section": "records" if request.user.role == Role.AUDITOR else "inbox",
        },
    )
