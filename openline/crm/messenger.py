"""Messenger clients in the CRM: their item is saved when they first write.

The reference behaviour: a Telegram, WhatsApp, Facebook or Viber client's data is saved
in the CRM (a contact or lead, per the Open Channel) as soon as they send their first
message, before they confirm consent. The connectors call ``ensure_client_item`` for
every inbound message; it is idempotent and race-safe.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from openline.conversations.inbound import SourceRef
from openline.conversations.models import Visitor
from openline.crm import signals
from openline.crm.access import MESSENGER_ORIGINS, log_change
from openline.crm.identities import Match, add_identities, parse_identities
from openline.crm.models import ChangeAction, CrmIdentity, CrmItem, CrmVisitor
from openline.openchannels.models import CrmItemKind


def client_item_name(visitor: Visitor) -> str:
    """Name the item from the platform profile, else e.g. "Telegram user 111222333"."""
    name = " ".join((visitor.name or "").split())
    if name:
        return name[:200]
    return f"{visitor.get_origin_display()} user {visitor.external_id}"[:200]


def _linked_item(visitor: Visitor) -> CrmItem | None:
    link = CrmVisitor.objects.select_related("item").filter(visitor=visitor).first()
    return link.item if link is not None else None


def _identities(visitor: Visitor):
    try:
        # WhatsApp's sender id is the client's phone number; the other platforms give none.
        return parse_identities(phones=[visitor.phone], visitor=visitor)
    except ValidationError:
        return parse_identities(visitor=visitor)


def _match_in_channel(*, identities, channel) -> Match | None:
    """Find the item owning one of the identities among the items of this Open Channel.

    Only this channel's items (its own, or linked to its visitors or conversations): a phone
    number or messenger id seen on another Open Channel must not hand this channel's client
    (and its operators) an item with another channel's history, nor the other way round.
    """
    channel_items = CrmItem.objects.filter(
        Q(source_channel=channel)
        | Q(visitor_links__visitor__channel=channel)
        | Q(conversation_links__conversation__channel=channel)
    )
    for kind, value, display in identities.pairs():
        identity = (
            CrmIdentity.objects.select_related("item")
            .filter(kind=kind, value=value, item__in=channel_items.values("pk"))
            .first()
        )
        if identity is not None:
            return Match(item=identity.item, matched_by=kind, value=display)
    return None


def _create_or_link(*, channel, visitor: Visitor) -> CrmItem:
    """Reuse the item owning the client's messenger id (or phone), else create one; link it."""
    identities = _identities(visitor)
    match = _match_in_channel(identities=identities, channel=channel)
    if match is not None:
        item = match.item
    else:
        item = CrmItem.objects.create(
            kind=CrmItemKind(channel.crm_item_kind or CrmItemKind.LEAD),
            name=client_item_name(visitor),
            source_channel=channel,
        )
    # The one-to-one link is what makes two processes end with one item: the second
    # insert fails and its transaction (with its item) is rolled back.
    CrmVisitor.objects.create(item=item, visitor=visitor)
    added = add_identities(item, identities)
    if match is None:
        changes: dict = {"kind": item.kind, "name": item.name, "messenger": visitor.origin}
        if added:
            changes["identities_added"] = added
        log_change(item, None, ChangeAction.CREATED, changes)
        signals.item_created.send(sender=CrmItem, item=item)
    else:
        changes = {"messenger": visitor.origin, "matched_by": match.matched_by}
        if added:
            changes["identities_added"] = added
        log_change(item, None, ChangeAction.UPDATED, changes)
    return item


def ensure_client_item(*, channel, visitor: Visitor) -> CrmItem:
    """Return the CRM item of a messenger client, creating and linking it on first contact."""
    if visitor.origin not in MESSENGER_ORIGINS or not visitor.external_id:
        raise ValueError("Only a messenger client with a platform id gets an item this way.")
    if visitor.channel_id != channel.pk:
        raise ValueError("The visitor belongs to another Open Channel.")
    item = _linked_item(visitor)
    if item is not None:
        return item
    try:
        with transaction.atomic():
            return _create_or_link(channel=channel, visitor=visitor)
    except IntegrityError:
        # Another process linked this visitor a moment ago: use its item.
        item = _linked_item(visitor)
        if item is None:
            raise
        return item


def item_source(item: CrmItem) -> SourceRef:
    """Describe the item as the Source of a consent record (no personal data in the label)."""
    return SourceRef(type="crm_item", id=str(item.pk), label=item.label)
