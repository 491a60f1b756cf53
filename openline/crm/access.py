"""Who may see and change which CRM items; the change log every CRM write appends to."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from openline.accounts.models import Role, User
from openline.consent.models import ConsentRecord, ConsentState
from openline.conversations.models import Visitor, VisitorOrigin
from openline.crm.models import CrmChange, CrmConversation, CrmItem, CrmVisitor
from openline.openchannels.models import OpenChannel

MESSENGER_ORIGINS = frozenset(
    {VisitorOrigin.TELEGRAM, VisitorOrigin.WHATSAPP, VisitorOrigin.FACEBOOK, VisitorOrigin.VIBER}
)


def actor_label(actor: User | None) -> str:
    return str(actor) if actor is not None else "Openline"


def can_use_channel(user: User, channel_id: int | None) -> bool:
    """Tell whether the user may work with clients of this channel."""
    if user.role == Role.ADMINISTRATOR:
        return True
    if user.role != Role.OPERATOR or channel_id is None:
        return False
    return user.open_channels.filter(pk=channel_id).exists()


def visible_items(user: User) -> QuerySet[CrmItem]:
    """Return the items the user may see: all for administrators, their channels' for operators."""
    items = CrmItem.objects.all()
    if user.role == Role.ADMINISTRATOR:
        return items
    if user.role != Role.OPERATOR:
        return items.none()
    mine = OpenChannel.objects.filter(operators=user)
    return items.filter(
        Q(source_channel__in=mine)
        | Q(responsible=user)
        | Exists(
            CrmConversation.objects.filter(item=OuterRef("pk"), conversation__channel__in=mine)
        )
        # A messenger client's item is linked to their visitor before any chat is saved.
        | Exists(CrmVisitor.objects.filter(item=OuterRef("pk"), visitor__channel__in=mine))
    )


def items_with_latest_consent_state(state: str) -> QuerySet:
    """Return the ids of items with a visitor whose newest consent record has ``state``.

    Works from the records side (one pass over the registry, indexed by visitor) instead
    of a correlated subquery per item, so filtering stays fast with many items.
    """
    newest = ConsentRecord.objects.filter(state=state).exclude(
        Exists(
            ConsentRecord.objects.filter(visitor=OuterRef("visitor")).filter(
                Q(created_at__gt=OuterRef("created_at"))
                | Q(created_at=OuterRef("created_at"), id__gt=OuterRef("id"))
            )
        )
    )
    return CrmVisitor.objects.filter(visitor__in=newest.values("visitor")).values("item_id")


def can_see_item(user: User, item: CrmItem) -> bool:
    """Tell whether the user may open the item."""
    return visible_items(user).filter(pk=item.pk).exists()


def is_unconfirmed_messenger_client(item: CrmItem) -> bool:
    """Tell whether every visitor of the item came from a messenger and none gave consent."""
    visitors = list(Visitor.objects.filter(crm_link__item=item))
    if not visitors or any(v.origin not in MESSENGER_ORIGINS for v in visitors):
        return False
    return not ConsentRecord.objects.filter(visitor__in=visitors, state=ConsentState.GIVEN).exists()


def can_delete(user: User, item: CrmItem) -> bool:
    """Administrators delete any client; operators only unconfirmed messenger clients they see."""
    if user.role == Role.ADMINISTRATOR:
        return True
    return (
        user.role == Role.OPERATOR
        and can_see_item(user, item)
        and is_unconfirmed_messenger_client(item)
    )


def log_change(item: CrmItem, actor: User | None, action: str, changes: dict) -> CrmChange:
    return CrmChange.objects.create(
        item=item, actor=actor, actor_label=actor_label(actor), action=action, changes=changes
    )
