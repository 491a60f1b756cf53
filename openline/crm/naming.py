"""Client names from the CRM, registered with ``conversations.naming`` when Django starts.

The conversations app stays pseudonymous and never imports the CRM; it asks the resolvers
registered here. ``resolve`` works on a whole batch with a fixed number of queries, so a page
of a hundred conversations costs the same as one; ``search`` runs no query at all: it returns
a lazy QuerySet of visitor ids that the caller embeds as a subquery (the ``naming`` contract).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.urls import reverse

from openline.conversations import naming
from openline.conversations.naming import ClientName
from openline.crm.models import CrmIdentity, CrmItem, CrmVisitor, IdentityKind
from openline.crm.normalize import search_digits


def item_url(item_id: int) -> str:
    """Return the console URL of a CRM item."""
    return reverse("crm:item", kwargs={"pk": item_id})


def _first_displays(item_ids: list[int]) -> dict[tuple[int, str], str]:
    # The identity an operator added first is the one shown (ordering: kind, id).
    firsts: dict[tuple[int, str], str] = {}
    for item_id, kind, display in (
        CrmIdentity.objects.filter(
            item_id__in=item_ids, kind__in=[IdentityKind.EMAIL, IdentityKind.PHONE]
        )
        .order_by("id")
        .values_list("item_id", "kind", "display")
    ):
        firsts.setdefault((item_id, kind), display)
    return firsts


def resolve(visitor_ids: list[int]) -> dict[int, ClientName]:
    """Return the CRM's name, e-mail and phone of each linked, non-erased visitor (two queries)."""
    links = list(
        CrmVisitor.objects.filter(visitor_id__in=visitor_ids, visitor__erased_at__isnull=True)
        .select_related("item")
        .only("visitor_id", "item__id", "item__name")
    )
    if not links:
        return {}
    firsts = _first_displays(sorted({link.item_id for link in links}))
    return {
        link.visitor_id: ClientName(
            name=link.item.name,
            email=firsts.get((link.item_id, IdentityKind.EMAIL), ""),
            phone=firsts.get((link.item_id, IdentityKind.PHONE), ""),
            crm_item_id=link.item_id,
            crm_url=item_url(link.item_id),
        )
        for link in links
    }


def matching_items(query: str, *, min_phone_digits: int | None = None) -> Q:
    """Return the filter of CRM items whose name, e-mail or phone matches ``query``.

    The CRM list's rules: the name and every identity by substring, and a query that looks
    like a phone number by its digits (with or without a national trunk prefix).

    With ``min_phone_digits`` (the client search of the inbox and the registry), phone
    numbers match by their digits only, and only for a query with at least that many digits:
    "12" is in almost every phone number.
    """
    query = (query or "").strip()
    by_text = CrmIdentity.objects.filter(value__icontains=query.lower())
    digits = search_digits(query)
    if min_phone_digits is not None:
        by_text = by_text.exclude(kind=IdentityKind.PHONE)
        if len(digits) < min_phone_digits:
            digits = ""
    identities = by_text
    if digits:
        phones = Q(value__contains=digits)
        # "030 1234567" is "+49 30 1234567" dialled at home: match without the trunk prefix.
        national = digits.lstrip("0")
        if national != digits and len(national) >= 6:
            phones |= Q(value__contains=national)
        identities = identities | CrmIdentity.objects.filter(phones, kind=IdentityKind.PHONE)
    return Q(name__icontains=query) | Q(pk__in=identities.values("item_id"))


def search(query: str) -> QuerySet[Any, Any]:
    """Return the ids of non-erased visitors linked to a CRM item that matches ``query``.

    A lazy QuerySet (one column, ``visitor_id``) for ``naming.visitors_matching``, which adds
    the visitors' own profiles and embeds it all as one subquery. Too short or too long a
    query matches nobody (``naming.MIN_QUERY``, ``naming.MAX_QUERY``, ``MIN_PHONE_DIGITS``).
    """
    query = naming.searchable(query)
    if not query:
        return CrmVisitor.objects.none().values("visitor_id")
    items = CrmItem.objects.filter(
        matching_items(query, min_phone_digits=naming.MIN_PHONE_DIGITS)
    ).values("pk")
    return CrmVisitor.objects.filter(item_id__in=items, visitor__erased_at__isnull=True).values(
        "visitor_id"
    )


def item_name(item: CrmItem, visitors) -> str:
    """Return what the item page calls the client: as the inbox and the Awaiting list do."""
    if item.name:
        return item.name
    # A messenger client's item before anyone typed a name: the profile's name, if any.
    own = next((v.name for v in visitors if v.name and not v.erased_at), "")
    return own or item.label
