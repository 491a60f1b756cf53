"""Messenger clients awaiting consent: who they are, and deleting their data.

A messenger client who received the consent warning but has not confirmed it yet
(``Visitor.awaiting_consent_since``) already has a CRM item and stored messages. The
Awaiting consent page lists them per Open Channel, and an administrator or the
channel's operator can delete their data; the retention job does the same after the
channel's ``unconfirmed_retention_days``. A client whose consent to the current version is in
force is never deleted here.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from openline.accounts.models import Role, User
from openline.consent.models import Agreement, AgreementVersion, ConsentRecord, ConsentState
from openline.consent.services import current_state
from openline.conversations import erasure, outbox
from openline.conversations.models import Conversation, Message, Visitor
from openline.crm.access import MESSENGER_ORIGINS, actor_label, can_use_channel, log_change
from openline.crm.models import (
    ChangeAction,
    CrmConversation,
    CrmErasure,
    CrmIdentity,
    CrmItem,
    CrmVisitor,
    IdentityKind,
)
from openline.crm.normalize import messenger_identity
from openline.openchannels.models import OpenChannel

log = logging.getLogger(__name__)

REASON_PAGE = "Deleted on the Awaiting consent page"
REASON_RETENTION = "Unconfirmed longer than the Open Channel's retention period"
ERASED_REASON = "The client's data was deleted"


def _consents_to_channel_version():
    """True where the visitor's newest record for the channel's consent gives the current version.

    A client re-warned after withdrawing, or who consented only to an older version, is
    unconfirmed again: they are listed (and deletable) like a new client.
    """
    newest_version = (
        AgreementVersion.objects.filter(agreement_id=OuterRef(OuterRef("channel__agreement_id")))
        .order_by("-number")
        .values("pk")[:1]
    )
    newest_record = ConsentRecord.objects.filter(
        visitor=OuterRef(OuterRef("pk")), agreement_id=OuterRef(OuterRef("channel__agreement_id"))
    ).order_by("-created_at", "-id")
    return Exists(
        ConsentRecord.objects.filter(
            pk=Subquery(newest_record.values("pk")[:1]),
            state=ConsentState.GIVEN,
            version_id=Subquery(newest_version),
        )
    )


def _unconfirmed() -> QuerySet[Visitor]:
    """Messenger clients waiting for consent to the channel's current version (not erased)."""
    return Visitor.objects.filter(
        awaiting_consent_since__isnull=False,
        erased_at__isnull=True,
        origin__in=MESSENGER_ORIGINS,
    ).exclude(_consents_to_channel_version())


def awaiting_clients(*, user: User, channel: OpenChannel | None = None) -> QuerySet[Visitor]:
    """List the unconfirmed messenger clients the user may see, oldest warning first."""
    visitors = _unconfirmed()
    if user.role == Role.OPERATOR:
        visitors = visitors.filter(channel__in=user.open_channels.all())
    elif user.role != Role.ADMINISTRATOR:
        return visitors.none()
    if channel is not None:
        visitors = visitors.filter(channel=channel)
    return (
        visitors.select_related("channel", "crm_link__item")
        .annotate(message_count=Count("conversations__messages"))
        .order_by("awaiting_consent_since", "pk")
    )


def _items_only_for(visitor: Visitor) -> tuple[list[CrmItem], list[CrmItem]]:
    """Split the visitor's items into those linked to nobody else and those shared."""
    items = list(CrmItem.objects.filter(visitor_links__visitor=visitor))
    own: list[CrmItem] = []
    shared: list[CrmItem] = []
    for item in items:
        others = CrmVisitor.objects.filter(item=item).exclude(visitor=visitor).exists()
        (shared if others else own).append(item)
    return own, shared


@dataclass(frozen=True)
class DeletionPreview:
    """What deleting one awaiting client removes (shown before the operator confirms)."""

    visitor: Visitor
    items: list[CrmItem]
    shared_items: list[CrmItem]
    conversations: int
    messages: int


def deletion_preview(visitor: Visitor) -> DeletionPreview:
    """Describe what ``delete_client_data`` would remove for this visitor."""
    own, shared = _items_only_for(visitor)
    conversation_ids = list(visitor.conversations.values_list("pk", flat=True))
    return DeletionPreview(
        visitor=visitor,
        items=own,
        shared_items=shared,
        conversations=len(conversation_ids),
        messages=Message.objects.filter(conversation_id__in=conversation_ids).count(),
    )


def _consents_now(visitor: Visitor) -> bool:
    """Tell whether the client's newest record gives consent to a consent's current version."""
    for agreement in Agreement.objects.filter(records__visitor=visitor).distinct():
        latest = current_state(visitor=visitor, agreement=agreement)
        current = agreement.current_version
        if latest is None or latest.state != ConsentState.GIVEN or current is None:
            continue
        if latest.version_id == current.id:
            return True
    return False


def _check_deletable(actor: User | None, visitor: Visitor) -> None:
    if actor is not None and not can_use_channel(actor, visitor.channel_id):
        raise PermissionDenied("You do not answer this client's Open Channel.")
    # A client whose consent to a current version is in force is never deleted here; one
    # who withdrew, or consented only to an older version, is unconfirmed again. Their
    # consent records stay either way (they are immutable proof).
    if _consents_now(visitor):
        raise ValidationError("This client gave consent; their data is not deleted here.")
    if visitor.awaiting_consent_since is None or visitor.erased_at is not None:
        raise ValidationError("This client is no longer awaiting consent.")
    if visitor.origin not in MESSENGER_ORIGINS:
        raise ValidationError("Only messenger clients await consent this way.")


@transaction.atomic
def delete_client_data(*, actor: User | None, visitor: Visitor, reason: str) -> list[CrmErasure]:
    """Delete an unconfirmed messenger client's CRM item(s), messages and personal data.

    ``actor`` None is Openline itself (the retention job, or the client's "I decline").
    Consent records stay. Pending outgoing messages are given up. Returns one CrmErasure
    per item deleted (none when the client had no item of their own).
    """
    # The lock makes a client's confirmation and this deletion take turns.
    visitor = Visitor.objects.select_for_update().select_related("channel").get(pk=visitor.pk)
    _check_deletable(actor, visitor)
    own, shared = _items_only_for(visitor)
    identity = messenger_identity(visitor.origin, visitor.external_id)
    # Nothing still queued may reach a client whose data is gone.
    outbox.fail_pending_for(visitor=visitor, reason=ERASED_REASON)
    result = erasure.erase_visitor(actor=actor, visitor=visitor)
    Visitor.objects.filter(pk=visitor.pk).update(
        awaiting_consent_since=None, warning_version_id=None
    )
    conversation_ids = list(
        Conversation.objects.filter(visitor=visitor).values_list("pk", flat=True)
    )
    erasures = []
    for item in own:
        counts = {
            "visitors": 1,
            "conversations": result.conversations,
            "messages": result.messages,
            "identities": item.identities.count(),
            "notes": item.notes.count(),
            "consent_records_kept": ConsentRecord.objects.filter(visitor=visitor).count(),
            "reason": reason,
            "channel": visitor.channel_id,
        }
        item_id, label = item.pk, item.label
        item.delete()
        erasures.append(
            CrmErasure.objects.create(
                item_id_deleted=item_id,
                item_label=label,
                visitor_public_ids=[result.visitor_public_id],
                counts=counts,
                actor=actor,
                actor_label=actor_label(actor),
            )
        )
    for item in shared:
        # Another client stays on this item: take away only this client's identity and links.
        CrmIdentity.objects.filter(item=item, kind=IdentityKind.MESSENGER, value=identity).delete()
        CrmVisitor.objects.filter(item=item, visitor=visitor).delete()
        CrmConversation.objects.filter(item=item, conversation_id__in=conversation_ids).delete()
        log_change(
            item,
            actor,
            ChangeAction.UPDATED,
            {"client_data_deleted": result.visitor_public_id, "reason": reason},
        )
    log.info(
        "deleted unconfirmed messenger client %s of channel %s: %d item(s), %d message(s)",
        result.visitor_public_id,
        visitor.channel_id,
        len(own),
        result.messages,
    )
    return erasures


def purge_unconfirmed(*, now: dt.datetime | None = None) -> int:
    """Delete clients awaiting consent longer than their channel allows; return how many."""
    now = now or timezone.now()
    total = 0
    channels = OpenChannel.objects.filter(
        unconfirmed_retention_days__isnull=False, unconfirmed_retention_days__gt=0
    ).order_by("pk")
    for channel in channels:
        days = channel.unconfirmed_retention_days or 0
        cutoff = now - dt.timedelta(days=days)
        due = _unconfirmed().filter(channel=channel, awaiting_consent_since__lt=cutoff)
        deleted: list[str] = []
        for visitor in due.order_by("awaiting_consent_since", "pk"):
            try:
                delete_client_data(actor=None, visitor=visitor, reason=REASON_RETENTION)
            except ValidationError:
                continue  # they confirmed (or were deleted) since the query ran
            deleted.append(str(visitor.public_id))
        if deleted:
            # Pseudonymous ids only: the log must not become a copy of the deleted data.
            log.info(
                "retention: deleted %d unconfirmed client(s) of channel %s older than %d "
                "day(s): %s",
                len(deleted),
                channel.pk,
                days,
                ", ".join(deleted),
            )
        total += len(deleted)
    return total


def visible_channels(user: User) -> QuerySet[OpenChannel]:
    """Return the Open Channels whose awaiting clients the user may see."""
    if user.role == Role.ADMINISTRATOR:
        return OpenChannel.objects.all()
    if user.role == Role.OPERATOR:
        return OpenChannel.objects.filter(operators=user)
    return OpenChannel.objects.none()


__all__ = [
    "REASON_PAGE",
    "REASON_RETENTION",
    "DeletionPreview",
    "awaiting_clients",
    "delete_client_data",
    "deletion_preview",
    "purge_unconfirmed",
    "visible_channels",
]
