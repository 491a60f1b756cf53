"""Creating a lead or contact directly (not from a conversation), e.g. over the API."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from openline.accounts.models import Role, User
from openline.crm import signals
from openline.crm.access import can_see_item, can_use_channel, log_change
from openline.crm.identities import parse_identities
from openline.crm.models import ChangeAction, CrmIdentity, CrmItem, IdentityKind
from openline.openchannels.models import CrmItemKind, OpenChannel


@transaction.atomic
def create_item(
    *,
    actor: User,
    kind: str,
    name: str,
    emails: list[str],
    phones: list[str],
    source_channel: OpenChannel | None,
    responsible: User | None,
) -> CrmItem:
    """Create an item with its emails and phones; log it and announce ``item_created``.

    Operators create items only for an Open Channel they answer (so they can see them);
    administrators may leave the channel empty. An email or phone that already belongs
    to another item is refused, naming that item only to someone who may open it.
    """
    if actor.role not in (Role.ADMINISTRATOR, Role.OPERATOR):
        raise PermissionDenied("Your role does not give access to the CRM.")
    if source_channel is None and actor.role != Role.ADMINISTRATOR:
        raise ValidationError({"source_channel_id": "Choose an Open Channel you answer."})
    if source_channel is not None and not can_use_channel(actor, source_channel.pk):
        raise PermissionDenied("You do not answer this Open Channel.")
    if responsible is not None and (
        not responsible.is_active or responsible.role not in (Role.ADMINISTRATOR, Role.OPERATOR)
    ):
        raise ValidationError({"responsible_id": "Choose an active operator or administrator."})
    identities = parse_identities(emails=emails, phones=phones)
    errors: dict[str, list[str]] = {}
    for identity_kind, value, display in identities.pairs():
        other = (
            CrmIdentity.objects.filter(kind=identity_kind, value=value)
            .select_related("item")
            .first()
        )
        if other is not None:
            field_name = "emails" if identity_kind == IdentityKind.EMAIL else "phones"
            owner = other.item.label if can_see_item(actor, other.item) else "another client"
            errors.setdefault(field_name, []).append(f"{display} already belongs to {owner}.")
    if errors:
        raise ValidationError(errors)
    item = CrmItem(
        kind=CrmItemKind(kind),
        name=name.strip(),
        source_channel=source_channel,
        responsible=responsible,
        created_by=actor,
    )
    item.full_clean()
    item.save()
    for identity_kind, value, display in identities.pairs():
        CrmIdentity.objects.create(item=item, kind=identity_kind, value=value, display=display)
    signals.item_created.send(sender=CrmItem, item=item)
    log_change(
        item,
        actor,
        ChangeAction.CREATED,
        {
            "kind": item.kind,
            "name": item.name,
            "emails": list(identities.emails.values()),
            "phones": list(identities.phones.values()),
        },
    )
    return item
