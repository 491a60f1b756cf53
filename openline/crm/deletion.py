"""Deleting a client's data (GDPR Art. 17) and exporting it (subject access, Art. 15)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from openline.accounts.models import User
from openline.consent.models import ConsentRecord
from openline.conversations import erasure
from openline.conversations.models import Conversation, Visitor
from openline.crm import signals
from openline.crm.access import can_delete
from openline.crm.items import identity_displays
from openline.crm.models import CrmErasure, CrmItem, IdentityKind


class AlreadyDeleted(Exception):
    """The client's data was already deleted; ``erasure`` says when and by whom."""

    def __init__(self, erasure: CrmErasure | None):
        super().__init__("This client's data was already deleted.")
        self.erasure = erasure


def deletion_summary(item: CrmItem) -> dict:
    """Describe what deleting the client removes and what it keeps."""
    visitors = list(Visitor.objects.filter(crm_link__item=item))
    conversations = Conversation.objects.filter(visitor__in=visitors)
    return {
        "visitors": visitors,
        "conversations": conversations.count(),
        "messages": sum(c.messages.count() for c in conversations),
        "identities": item.identities.count(),
        "notes": item.notes.count(),
        "consent_records": ConsentRecord.objects.filter(visitor__in=visitors).count(),
    }


@transaction.atomic
def delete_client_data(*, actor: User, item_id: int) -> CrmErasure:
    """Delete the CRM item, erase its visitors' personal data and messages; keep consent records."""
    item = CrmItem.objects.select_for_update().filter(pk=item_id).first()
    if item is None:
        raise AlreadyDeleted(CrmErasure.objects.filter(item_id_deleted=item_id).first())
    if not can_delete(actor, item):
        raise PermissionDenied("Only an administrator can delete this client's data.")
    visitors = list(Visitor.objects.filter(crm_link__item=item))
    erased = [erasure.erase_visitor(actor=actor, visitor=v) for v in visitors]
    counts = {
        "visitors": len(erased),
        "conversations": sum(e.conversations for e in erased),
        "messages": sum(e.messages for e in erased),
        "identities": item.identities.count(),
        "notes": item.notes.count(),
        "consent_records_kept": ConsentRecord.objects.filter(visitor__in=visitors).count(),
    }
    label = item.label
    item.delete()
    signals.item_deleted.send(sender=CrmItem, item_id=item_id)
    return CrmErasure.objects.create(
        item_id_deleted=item_id,
        item_label=label,
        visitor_public_ids=[e.visitor_public_id for e in erased],
        counts=counts,
        actor=actor,
        actor_label=str(actor),
    )


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def subject_access_export(*, actor: User, item: CrmItem) -> dict:
    """Collect everything Openline holds about the client (GDPR Art. 15) as JSON-ready data."""
    visitors = list(Visitor.objects.filter(crm_link__item=item).select_related("channel"))
    conversations = (
        Conversation.objects.filter(visitor__in=visitors)
        .select_related("channel")
        .prefetch_related("messages__author")
        .order_by("started_at", "pk")
    )
    records = (
        ConsentRecord.objects.filter(visitor__in=visitors)
        .select_related("agreement", "version")
        .prefetch_related("version__texts")
        .order_by("created_at", "id")
    )
    return {
        "format": "openline-subject-access/1",
        "generated_at": timezone.now().isoformat(),
        "generated_by": str(actor),
        "controller": getattr(settings, "OPENLINE_CONTROLLER_NAME", ""),
        "crm_item": {
            "id": item.pk,
            "kind": item.kind,
            "name": item.name,
            "source_channel": item.source_channel.name if item.source_channel else None,
            "responsible_operator": str(item.responsible) if item.responsible else None,
            "created_at": _iso(item.created_at),
            "converted_to_contact_at": _iso(item.converted_at),
            "emails": identity_displays(item, IdentityKind.EMAIL),
            "phones": identity_displays(item, IdentityKind.PHONE),
            "messenger_identities": identity_displays(item, IdentityKind.MESSENGER),
            "notes": [
                {"author": n.author_label, "created_at": _iso(n.created_at), "text": n.text}
                for n in item.notes.all()
            ],
            "history": [
                {
                    "at": _iso(c.created_at),
                    "by": c.actor_label,
                    "action": c.action,
                    "changes": c.changes,
                }
                for c in item.changes.order_by("created_at", "id")
            ],
        },
        "visitors": [
            {
                "pseudonymous_id": str(v.public_id),
                "origin": v.origin,
                "channel": v.channel.name,
                "name": v.name,
                "email": v.email,
                "phone": v.phone,
                "messenger_user_id": v.external_id,
                "language": v.language,
                "user_agent": v.user_agent,
                "created_at": _iso(v.created_at),
                "last_seen_at": _iso(v.last_seen_at),
                "erased_at": _iso(v.erased_at),
            }
            for v in visitors
        ],
        "conversations": [
            {
                "id": c.pk,
                "channel": c.channel.name,
                "origin": c.origin,
                "status": c.status,
                "page_url": c.page_url,
                "started_at": _iso(c.started_at),
                "closed_at": _iso(c.closed_at),
                "messages": [
                    {
                        "sender": m.sender,
                        "author": str(m.author) if m.author else None,
                        "text": m.text,
                        "created_at": _iso(m.created_at),
                    }
                    for m in c.messages.all()
                ],
            }
            for c in conversations
        ],
        "consent_records": [_record_export(r) for r in records],
    }


def _record_export(record: ConsentRecord) -> dict:
    texts = {t.language: t for t in record.version.texts.all()}
    shown = texts.get(record.language)
    return {
        "record_id": str(record.uuid),
        "created_at": _iso(record.created_at),
        "consent": record.agreement.name,
        "version": record.version.number,
        "language": record.language,
        "state": record.state,
        "method": record.method,
        "origin": record.origin,
        "source_type": record.source_type,
        "source_id": record.source_id,
        "source_label": record.source_label,
        "address": record.address,
        "ip": record.ip,
        "ip_missing_reason": record.ip_missing_reason,
        "user_agent": record.user_agent,
        "conversation": record.conversation_id,
        "text_sha256": record.text_sha256,
        "text_shown": {
            "text": shown.text if shown else None,
            "html": shown.rendered_html if shown else None,
            "sha256": shown.sha256 if shown else None,
        },
        "evidence": record.evidence,
    }
