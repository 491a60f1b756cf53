"""Client names for the console, looked up at read time from whoever knows them.

The registry and the conversations stay pseudonymous ("Visitor ab12cd34"); once a client is in
the CRM, the console shows the CRM's name instead. The CRM sits above this app, so it registers
itself here when Django starts (``crm.apps``): this module never imports it.

- ``client_names(visitor_ids)`` returns ``{visitor_id: ClientName}`` for the visitors somebody
  knows (one query per resolver for the whole batch, never per row).
- ``visitors_matching(query)`` returns the ids of the non-erased visitors whose own or known
  name, e-mail or phone matches ``query``, as a lazy QuerySet of ids (``values_list("pk",
  flat=True)`` over ``Visitor``). Use it as a subquery, ``visitor_id__in=visitors_matching(q)``:
  the database matches the ids, so a search that finds everybody never turns into one SQL
  parameter per visitor. Iterating it runs the query (for tests and small lookups).
- ``label(visitor, known)`` is what a person sees for a visitor.

Searchers (the second half of ``register``) follow the same contract: ``searcher(query)``
returns a lazy QuerySet with a single column of visitor ids (e.g. ``Visitor.objects.filter(...)
.values("pk")`` or ``SomeLink.objects.filter(...).values("visitor_id")``), never a list or a
set, and may leave erased visitors in (they are filtered out here). A searcher is only asked
for a query of at least ``MIN_QUERY`` characters; phone numbers match by their digits and
only from ``MIN_PHONE_DIGITS`` digits on (``phone_digits``), so a single letter or a couple of
digits do not match every client.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from openline.conversations.models import Visitor

# Fewer characters than this match too many clients to be a search for one of them.
MIN_QUERY = 2
# A phone search needs this many digits: "12" is in almost every number.
MIN_PHONE_DIGITS = 4
# A search term this long is no name, e-mail or phone; don't scan for it.
MAX_QUERY = 200

_PHONE_CHARS = re.compile(r"^[0-9\s().\-/+]+$")


@dataclass(frozen=True)
class ClientName:
    """What the CRM knows of a client: a name to show, contact details, where to read more."""

    name: str
    email: str = ""
    phone: str = ""
    crm_item_id: int | None = None
    crm_url: str = ""


Resolver = Callable[[list[int]], dict[int, ClientName]]
# ``searcher(query)`` -> a lazy QuerySet of one column of visitor ids (a subquery).
Searcher = Callable[[str], "QuerySet[Any, Any]"]

_resolvers: list[Resolver] = []
_searchers: list[Searcher] = []


def register(*, resolver: Resolver, searcher: Searcher) -> None:
    """Add a source of client names (idempotent: registering the same functions twice is a no-op)."""
    if resolver not in _resolvers:
        _resolvers.append(resolver)
    if searcher not in _searchers:
        _searchers.append(searcher)


def client_names(visitor_ids: Iterable[int]) -> dict[int, ClientName]:
    """Return the known names of ``visitor_ids`` (visitors nobody knows are left out)."""
    ids = sorted({int(v) for v in visitor_ids if v is not None})
    found: dict[int, ClientName] = {}
    if not ids:
        return found
    for resolver in _resolvers:
        for visitor_id, known in resolver(ids).items():
            found.setdefault(visitor_id, known)
    return found


def searchable(query: str) -> str:
    """Return ``query`` trimmed if it is long enough (and short enough) to look people up, else ""."""
    query = " ".join((query or "").split())
    return query if MIN_QUERY <= len(query) <= MAX_QUERY else ""


def phone_digits(query: str) -> str:
    """Return the digits of a query that looks like a phone number with enough digits, else ""."""
    # Clients type numbers with their own digits (e.g. Arabic-Indic); match them as 0-9.
    query = "".join(str(unicodedata.digit(c)) if c.isdecimal() else c for c in query).strip()
    if not query or not _PHONE_CHARS.match(query):
        return ""
    digits = re.sub(r"[^0-9]", "", query)
    return digits if len(digits) >= MIN_PHONE_DIGITS else ""


def own_details_matching(query: str) -> Q:
    """Return the filter of visitors whose own profile (name, e-mail, phone) matches ``query``.

    ``query`` must already be ``searchable``. The phone is matched only for a query that looks
    like a phone number with at least ``MIN_PHONE_DIGITS`` digits.
    """
    condition = Q(name__icontains=query) | Q(email__icontains=query)
    if phone_digits(query):
        condition |= Q(phone__icontains=query)
    return condition


def visitors_matching(query: str) -> QuerySet[Any, Any]:
    """Return the ids of non-erased visitors whose own or known name, e-mail or phone matches.

    A lazy QuerySet of ids for ``visitor_id__in=``: empty for a query shorter than
    ``MIN_QUERY`` characters (or longer than ``MAX_QUERY``).
    """
    query = searchable(query)
    if not query:
        return Visitor.objects.none().values_list("pk", flat=True)
    condition = own_details_matching(query)
    for searcher in _searchers:
        condition |= Q(pk__in=searcher(query))
    return Visitor.objects.filter(condition, erased_at__isnull=True).values_list("pk", flat=True)


def label(visitor, known: ClientName | None = None) -> str:
    """Return the name a person sees: the CRM's, else the visitor's own, else a pseudonym."""
    if getattr(visitor, "erased_at", None):
        return str(visitor)
    if known is not None and known.name:
        return known.name
    return str(visitor)
