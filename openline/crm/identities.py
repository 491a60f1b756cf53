"""Matching clients to CRM items by the same visitor, messenger id, email or phone."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from openline.accounts.models import Role, User
from openline.conversations.models import Visitor
from openline.crm.access import MESSENGER_ORIGINS, visible_items
from openline.crm.models import CrmIdentity, CrmItem, CrmVisitor, IdentityKind
from openline.crm.normalize import messenger_identity, normalize_email, normalize_phone

MATCH_WORDS = {
    "visitor": "the same client",
    "conversation": "this chat",
    IdentityKind.MESSENGER: "messenger identity",
    IdentityKind.EMAIL: "email",
    IdentityKind.PHONE: "phone",
}


@dataclass(frozen=True)
class Identities:
    """Normalised identities: value -> as written."""

    emails: dict[str, str] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)
    messengers: dict[str, str] = field(default_factory=dict)

    def pairs(self):
        for kind, values in (
            (IdentityKind.MESSENGER, self.messengers),
            (IdentityKind.EMAIL, self.emails),
            (IdentityKind.PHONE, self.phones),
        ):
            for value, display in values.items():
                yield kind, value, display


def parse_identities(*, emails=(), phones=(), visitor: Visitor | None = None) -> Identities:
    """Validate and normalise emails and phones; raise ValidationError with field errors."""
    errors: dict[str, list[str]] = {}
    parsed = Identities()
    for raw in emails:
        if raw.strip():
            try:
                parsed.emails[normalize_email(raw)] = raw.strip()
            except ValidationError as exc:
                errors.setdefault("email", []).extend(exc.messages)
    for raw in phones:
        if raw.strip():
            try:
                parsed.phones[normalize_phone(raw)] = raw.strip()
            except ValidationError as exc:
                errors.setdefault("phone", []).extend(exc.messages)
    if errors:
        raise ValidationError(errors)
    if visitor is not None and visitor.origin in MESSENGER_ORIGINS and visitor.external_id:
        value = messenger_identity(visitor.origin, visitor.external_id)
        parsed.messengers[value] = f"{visitor.get_origin_display()} {visitor.external_id}"
    return parsed


@dataclass(frozen=True)
class Match:
    """An existing item that a client matched, and how."""

    item: CrmItem
    matched_by: str
    value: str = ""

    @property
    def description(self) -> str:
        how = MATCH_WORDS.get(self.matched_by, self.matched_by)
        return f"{how} {self.value}".strip()


@dataclass(frozen=True)
class Matching:
    """The item Save to CRM reuses, and items sharing the client's data that the actor may not see."""

    match: Match | None
    hidden: list[Match] = field(default_factory=list)


def find_matching(
    *, identities: Identities, visitor: Visitor | None = None, actor: User | None = None
) -> Matching:
    """Find the item for a client among those ``actor`` may see (all when acting as Openline).

    Order: same visitor, then messenger id, email, phone. An item the actor may not see is
    never reused (that would hand them its name, notes and phones); it is reported in
    ``hidden`` so the caller can tell administrators about a possible duplicate.
    """
    candidates: list[Match] = []
    if visitor is not None:
        link = CrmVisitor.objects.select_related("item").filter(visitor=visitor).first()
        if link is not None:
            candidates.append(Match(item=link.item, matched_by="visitor"))
    for kind, value, display in identities.pairs():
        identity = CrmIdentity.objects.select_related("item").filter(kind=kind, value=value).first()
        if identity is not None:
            candidates.append(Match(item=identity.item, matched_by=kind, value=display))
    limited = actor is not None and actor.role != Role.ADMINISTRATOR
    visible: set[int] = set()
    if actor is not None and limited and candidates:
        ids = {m.item.pk for m in candidates}
        visible = set(visible_items(actor).filter(pk__in=ids).values_list("pk", flat=True))
    match: Match | None = None
    hidden: list[Match] = []
    for candidate in candidates:
        if not limited or candidate.item.pk in visible:
            match = match or candidate
        elif all(h.item.pk != candidate.item.pk for h in hidden):
            hidden.append(candidate)
    return Matching(match=match, hidden=hidden)


def find_match(
    *, identities: Identities, visitor: Visitor | None = None, actor: User | None = None
) -> Match | None:
    """Find the existing item for a client that ``actor`` may see (see ``find_matching``)."""
    return find_matching(identities=identities, visitor=visitor, actor=actor).match


def add_identities(item: CrmItem, identities: Identities) -> list[str]:
    """Attach identities no other item owns; return the ones added (as written)."""
    added = []
    for kind, value, display in identities.pairs():
        owner = CrmIdentity.objects.filter(kind=kind, value=value).values_list("item_id", flat=True)
        owner_id = owner.first()
        if owner_id is None:
            try:
                with transaction.atomic():
                    CrmIdentity.objects.create(item=item, kind=kind, value=value, display=display)
            except IntegrityError:
                continue  # another request attached it a moment ago
            added.append(display)
    return added
