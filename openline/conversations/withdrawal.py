"""Withdrawing consent: the client's keyword, an operator on their request, the API's record.

A withdrawal covers every consent whose latest record for the client gives it, also one to
an agreement the channel no longer asks for (GDPR Art. 7(3): as easy as giving it).
"""

from __future__ import annotations

from django.db import transaction

from openline.consent import services as consent_services
from openline.consent.models import Agreement, ConsentMethod, ConsentRecord, ConsentState
from openline.conversations import outbox
from openline.conversations.actions import ActionError, can_answer, close_conversation
from openline.conversations.models import (
    Conversation,
    ConversationStatus,
    SenderKind,
    Visitor,
    VisitorOrigin,
)
from openline.conversations.notices import notice
from openline.openchannels.services import consent_settings

WITHDRAWN_REASON = "The client withdrew consent"


def _agreements_given(visitor: Visitor) -> list:
    """Return every agreement whose latest record for this visitor gives consent."""
    agreements = Agreement.objects.filter(records__visitor=visitor).distinct().order_by("pk")
    found = []
    for agreement in agreements:
        latest = consent_services.current_state(visitor=visitor, agreement=agreement)
        if latest is not None and latest.state == ConsentState.GIVEN:
            found.append(agreement)
    return found


def withdraw_by_keyword(*, channel, kind: str, visitor, conversation, message, source) -> str:
    """Withdraw every consent in force after the client's keyword; return "withdrawn" or ""."""
    from openline.conversations.inbound import NO_IP_REASON, conversation_link

    agreements = _agreements_given(visitor)
    if not agreements:
        outbox.enqueue(
            conversation=conversation, text=notice("nothing_to_withdraw", visitor.language)
        )
        return ""
    for agreement in agreements:
        consent_services.withdraw_consent(
            visitor=visitor,
            agreement=agreement,
            origin=kind,
            source_type=source.type,
            source_id=source.id,
            source_label=source.label,
            address=conversation_link(conversation),
            ip="",
            ip_missing_reason=NO_IP_REASON,
            user_agent="",
            channel=channel,
            conversation=conversation,
            evidence={
                "messenger": kind,
                "keyword_message_key": message.external_id,
                "keyword_message_id": message.id,
            },
            method=ConsentMethod.WITHDRAWN_BY_CLIENT,
            channel_settings=consent_settings(channel),
        )
    _after_withdrawal(conversation, visitor, actor=None)
    return "withdrawn"


def _after_withdrawal(conversation: Conversation, visitor: Visitor, *, actor) -> None:
    """Tell the client, forget the warning (a new one precedes any new consent), close the chat."""
    text = notice("withdrawn", visitor.language)
    if conversation.origin == VisitorOrigin.LIVECHAT:
        outbox.append_message(
            conversation=conversation, sender=SenderKind.SYSTEM, text=text, to_visitor=True
        )
    else:
        outbox.enqueue(conversation=conversation, text=text)
    Visitor.objects.filter(pk=visitor.pk).update(
        warning_version_id=None, awaiting_consent_since=None
    )
    visitor.warning_version_id = None
    visitor.awaiting_consent_since = None
    if conversation.status != ConversationStatus.CLOSED:
        close_conversation(conversation=conversation, actor=actor, reason=WITHDRAWN_REASON)


@transaction.atomic
def conclude_withdrawal(*, visitor: Visitor, channel) -> int:
    """A withdrawal recorded outside any chat (the API) has the consequences of one in a chat.

    Each open conversation of the client on the channel the withdrawal was recorded on is told
    and closed, as when the client withdraws in the widget or by keyword, and the messenger
    warning is forgotten. Returns the number of conversations closed.
    """
    conversations = list(
        Conversation.objects.select_for_update(of=("self",))
        .filter(visitor=visitor, channel=channel)
        .exclude(status=ConversationStatus.CLOSED)
        .order_by("pk")
    )
    for conversation in conversations:
        _after_withdrawal(conversation, visitor, actor=None)
    if not conversations:
        Visitor.objects.filter(pk=visitor.pk).update(
            warning_version_id=None, awaiting_consent_since=None
        )
    return len(conversations)


@transaction.atomic
def withdraw_on_request(*, actor, conversation) -> ConsentRecord:
    """Record the withdrawal a client asked an operator for in the chat; tell them; close it."""
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("channel__agreement", "visitor", "assignee")
        .get(pk=conversation.pk)
    )
    if not can_answer(actor, conversation):
        raise ActionError("forbidden", "You do not answer this Open Channel.")
    channel, visitor = conversation.channel, conversation.visitor
    # Every consent in force, also one to an agreement the channel no longer asks for.
    agreements = _agreements_given(visitor)
    if not agreements:
        raise ActionError("not_given", "The client has no consent in force to withdraw.")
    records = [_withdraw_for(actor, conversation, channel, visitor, a) for a in agreements]
    _after_withdrawal(conversation, visitor, actor=actor)
    return records[0]


def _withdraw_for(actor, conversation, channel, visitor, agreement) -> ConsentRecord:
    from openline.conversations.inbound import OPERATOR_NO_IP_REASON, conversation_link

    return consent_services.withdraw_consent(
        visitor=visitor,
        agreement=agreement,
        origin=conversation.origin,
        source_type="conversation",
        source_id=str(conversation.pk),
        source_label=f"Chat #{conversation.pk}",
        address=conversation_link(conversation),
        ip="",
        ip_missing_reason=OPERATOR_NO_IP_REASON,
        user_agent="",
        channel=channel,
        conversation=conversation,
        evidence={"recorded_by_user_id": actor.pk, "recorded_by": str(actor)},
        method=ConsentMethod.WITHDRAWN_ON_REQUEST,
        channel_settings=consent_settings(channel),
    )
