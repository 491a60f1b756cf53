"""Editing CRM items: name, responsible operator, emails and phones; conversion; notes."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from openline.accounts.models import User
from openline.crm.access import can_see_item, log_change
from openline.crm.identities import parse_identities
from openline.crm.models import ChangeAction, CrmIdentity, CrmItem, CrmNote, IdentityKind
from openline.openchannels.models import CrmItemKind


def identity_displays(item: CrmItem, kind: str) -> list[str]:
    return [i.display for i in item.identities.all() if i.kind == kind]


@transaction.atomic
def update_item(
    *,
    actor: User,
    item: CrmItem,
    name: str,
    responsible: User | None,
    emails: list[str],
    phones: list[str],
) -> CrmItem:
    """Change an item's name, responsible operator, emails and phones; log what changed."""
    item = CrmItem.objects.select_for_update().get(pk=item.pk)
    identities = parse_identities(emails=emails, phones=phones)
    errors: dict[str, list[str]] = {}
    for kind, value, display in identities.pairs():
        other = (
            CrmIdentity.objects.filter(kind=kind, value=value)
            .exclude(item=item)
            .select_related("item")
            .first()
        )
        if other is not None:
            field_name = "emails" if kind == IdentityKind.EMAIL else "phones"
            # Name the other item only to someone who may open it.
            owner = other.item.label if can_see_item(actor, other.item) else "another client"
            errors.setdefault(field_name, []).append(f"{display} already belongs to {owner}.")
    if errors:
        raise ValidationError(errors)
    before = {
        "name": item.name,
        "responsible": str(item.responsible) if item.responsible else "",
        "emails": identity_displays(item, IdentityKind.EMAIL),
        "phones": identity_displays(item, IdentityKind.PHONE),
    }
    item.name = name.strip()
    item.responsible = responsible
    item.full_clean()
    item.save()
    for kind, wanted in (
        (IdentityKind.EMAIL, identities.emails),
        (IdentityKind.PHONE, identities.phones),
    ):
        item.identities.filter(kind=kind).exclude(value__in=list(wanted)).delete()
        existing = set(item.identities.filter(kind=kind).values_list("value", flat=True))
        for value, display in wanted.items():
            if value not in existing:
                CrmIdentity.objects.create(item=item, kind=kind, value=value, display=display)
            else:
                item.identities.filter(kind=kind, value=value).update(display=display)
    after = {
        "name": item.name,
        "responsible": str(responsible) if responsible else "",
        "emails": list(identities.emails.values()),
        "phones": list(identities.phones.values()),
    }
    changes = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
    if changes:
        log_change(item, actor, ChangeAction.UPDATED, changes)
    return item


@transaction.atomic
def convert_to_contact(*, actor: User, item: CrmItem) -> CrmItem:
    """Turn a lead into a contact, keeping its identities, links, notes and consents."""
    item = CrmItem.objects.select_for_update().get(pk=item.pk)
    if item.kind == CrmItemKind.CONTACT:
        raise ValidationError("This item is already a contact.")
    item.kind = CrmItemKind.CONTACT
    item.converted_at = timezone.now()
    item.save(update_fields=["kind", "converted_at", "updated_at"])
    log_change(
        item, actor, ChangeAction.CONVERTED, {"kind": [CrmItemKind.LEAD, CrmItemKind.CONTACT]}
    )
    return item


@transaction.atomic
def add_note(*, actor: User, item: CrmItem, text: str) -> CrmNote:
    """Add an operator's note to an item."""
    text = text.strip()
    if not text:
        raise ValidationError({"text": "Write a note first."})
    if len(text) > 5000:
        raise ValidationError({"text": "A note has at most 5000 characters."})
    note = CrmNote.objects.create(item=item, author=actor, author_label=str(actor), text=text)
    CrmItem.objects.filter(pk=item.pk).update(updated_at=timezone.now())
    log_change(item, actor, ChangeAction.NOTE_ADDED, {"note": text[:200]})
    return note
