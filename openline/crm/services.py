"""The only write path for the CRM: saving clients, matching, conversion, notes, deletion.

Views, the messenger connectors and the API call these functions; nothing else
writes a CRM model. Every function takes the acting user explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from openline.accounts.models import Role, User
from openline.consent.models import (
    Agreement,
    ConsentMethod,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
    SourceType,
)
from openline.consent.services import current_state, record_consent
from openline.conversations import erasure
from openline.conversations.models import Conversation, Visitor, VisitorOrigin
from openline.crm.models import (
    ChangeAction,
    CrmChange,
    CrmConversation,
    CrmErasure,
    CrmIdentity,
    CrmItem,
    CrmNote,
    CrmVisitor,
    IdentityKind,
)
from openline.crm.normalize import messenger_identity, normalize_email, normalize_phone
from openline.openchannels.models import CrmItemKind, OpenChannel

OPERATOR_IP_REASON = "Recorded by an operator, not by the client"
MESSENGER_ORIGINS = frozenset(
    {VisitorOrigin.TELEGRAM, VisitorOrigin.WHATSAPP, VisitorOrigin.FACEBOOK, VisitorOrigin.VIBER}
)
MATCH_WORDS = {
    "visitor": "the same client",
    "conversation": "this chat",
    IdentityKind.MESSENGER: "messenger identity",
    IdentityKind.EMAIL: "email",
    IdentityKind.PHONE: "phone",
}


class AlreadyDeleted(Exception):
    """The client's data was already deleted; ``erasure`` says when and by whom."""

    def __init__(self, erasure: CrmErasure | None):
        super().__init__("This client's data was already deleted.")
        self.erasure = erasure


# ----- who may see and change what -------------------------------------------------------


def _actor_label(actor: User | None) -> str:
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


# ----- matching --------------------------------------------------------------------------


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


def _add_identities(item: CrmItem, identities: Identities) -> list[str]:
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


def _log(item: CrmItem, actor: User | None, action: str, changes: dict) -> CrmChange:
    return CrmChange.objects.create(
        item=item, actor=actor, actor_label=_actor_label(actor), action=action, changes=changes
    )


# ----- Save to CRM -----------------------------------------------------------------------


@dataclass(frozen=True)
class SaveResult:
    """What Save to CRM did: the item, whether it is new, the match, the consent records."""

    item: CrmItem
    created: bool
    match: Match | None
    consent_records: list[ConsentRecord]
    already_saved: bool = False
    # Emails/phones not added because an item the operator may not see already has them.
    held_back: list[str] = field(default_factory=list)


def public_base_url(request=None) -> str:
    """Return the public base URL: OPENLINE_PUBLIC_URL, else the request's scheme and host."""
    configured = getattr(settings, "OPENLINE_PUBLIC_URL", "")
    if configured:
        return configured.rstrip("/")
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return ""


def conversation_link(conversation: Conversation, base_url: str = "") -> str:
    """Return the absolute link to the conversation in the operator inbox."""
    return f"{base_url or public_base_url()}/console/inbox/{conversation.pk}/"


def _link_consents(
    *, actor: User, item: CrmItem, conversation: Conversation, base_url: str
) -> list[ConsentRecord]:
    """Append one CRM record per consent the client currently gives, unless already linked."""
    visitor = conversation.visitor
    created = []
    for agreement in Agreement.objects.filter(records__visitor=visitor).distinct().order_by("pk"):
        latest = current_state(visitor=visitor, agreement=agreement)
        if latest is None or latest.state != ConsentState.GIVEN:
            continue  # never consented, or withdrew: nothing to link
        if latest.origin == ConsentOrigin.CRM and latest.source_id == str(item.pk):
            continue  # already linked to this item: saving again adds nothing
        record = record_consent(
            visitor=visitor,
            version=latest.version,
            language=latest.language,
            state=ConsentState.GIVEN,
            method=ConsentMethod.SAVED_TO_CRM,
            origin=ConsentOrigin.CRM,
            source_type=SourceType.CRM_ITEM,
            source_id=str(item.pk),
            source_label=item.label,
            address=conversation_link(conversation, base_url),
            ip="",
            ip_missing_reason=OPERATOR_IP_REASON,
            user_agent="",
            channel=conversation.channel,
            conversation=conversation,
            evidence={
                "operator": {"id": actor.pk, "username": actor.username, "name": str(actor)},
                "crm_item": {"id": item.pk, "kind": item.kind},
                "links_record": str(latest.uuid),
                "conversation": conversation.pk,
            },
        )
        created.append(record)
    return created


def _save_client(
    *,
    actor: User | None,
    conversation: Conversation,
    name: str,
    identities: Identities,
    kind: str | None,
) -> tuple[CrmItem, bool, Match | None, bool, list[str]]:
    """Create or reuse the item for the conversation's client and link both; lock-serialised."""
    # Locking the conversation row makes concurrent saves of one chat take turns
    # (PostgreSQL); on SQLite writers are serialised by IMMEDIATE transactions, and
    # the one-item-per-conversation constraint backs both up.
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("visitor", "channel")
        .get(pk=conversation.pk)
    )
    visitor = conversation.visitor
    link = CrmConversation.objects.select_related("item").filter(conversation=conversation).first()
    already_saved = link is not None
    created = False
    match: Match | None
    hidden: list[Match] = []
    if link is not None:
        item = link.item
        match = Match(item=item, matched_by="conversation")
    else:
        matching = find_matching(identities=identities, visitor=visitor, actor=actor)
        match, hidden = matching.match, matching.hidden
        if match is not None:
            item = match.item
        else:
            responsible = actor if actor is not None and actor.role == Role.OPERATOR else None
            item = CrmItem.objects.create(
                kind=CrmItemKind(kind or conversation.channel.crm_item_kind),
                name=name.strip(),
                source_channel=conversation.channel,
                responsible=responsible or conversation.assignee,
                created_by=actor,
            )
            created = True
            _log(item, actor, ChangeAction.CREATED, {"kind": item.kind, "name": item.name})
    changes: dict = {}
    name = name.strip()
    if name and name != item.name and (already_saved or not item.name):
        changes["name"] = [item.name, name]
        item.name = name
        item.save(update_fields=["name", "updated_at"])
    if already_saved and kind == CrmItemKind.CONTACT and item.kind == CrmItemKind.LEAD:
        # Saving the same chat again as a contact is the operator converting the lead.
        item.kind = CrmItemKind.CONTACT
        item.converted_at = timezone.now()
        item.save(update_fields=["kind", "converted_at", "updated_at"])
        _log(item, actor, ChangeAction.CONVERTED, {"kind": [CrmItemKind.LEAD, CrmItemKind.CONTACT]})
    added = _add_identities(item, identities)
    if added:
        changes["identities_added"] = added
    held_back = [h.value for h in hidden if h.value]
    if held_back:
        changes["identities_held_back"] = held_back
    if not already_saved:
        CrmVisitor.objects.get_or_create(visitor=visitor, defaults={"item": item})
        CrmConversation.objects.create(item=item, conversation=conversation, linked_by=actor)
        changes["conversation"] = conversation.pk
        if match is not None:
            changes["matched_by"] = match.matched_by
        _log(item, actor, ChangeAction.CONVERSATION_SAVED, changes)
    elif changes:
        _log(item, actor, ChangeAction.UPDATED, changes)
    for other in hidden:
        _note_possible_duplicate(other=other, item=item, actor=actor, conversation=conversation)
    return item, created, match, already_saved, held_back


DUPLICATE_NOTE = (
    "Possible duplicate: {item} (Open Channel {channel}, saved by {actor}) shares {how} with "
    "this client. {actor} cannot see this item, so it was not linked; an administrator can "
    "compare both."
)


def _note_possible_duplicate(
    *, other: Match, item: CrmItem, actor: User | None, conversation: Conversation
) -> None:
    """Leave a note on an item the saving operator may not see, for those who may."""
    text = DUPLICATE_NOTE.format(
        item=item.label,
        channel=conversation.channel.name,
        actor=_actor_label(actor),
        how=other.description,
    )
    CrmNote.objects.create(item=other.item, author=None, author_label="Openline", text=text)
    _log(
        other.item,
        actor,
        ChangeAction.NOTE_ADDED,
        {"note": text[:200], "possible_duplicate": item.pk},
    )


def save_conversation_to_crm(
    *,
    actor: User,
    conversation: Conversation,
    name: str = "",
    email: str = "",
    phone: str = "",
    kind: str | None = None,
    base_url: str = "",
) -> SaveResult:
    """Save the chat's client to the CRM and link their consent to the item (Save to CRM)."""
    if not can_use_channel(actor, conversation.channel_id):
        raise PermissionDenied("You do not answer this conversation's Open Channel.")
    if kind is not None and kind not in CrmItemKind.values:
        raise ValidationError({"kind": "Choose Lead or Contact."})
    if conversation.visitor.erased_at is not None:
        raise ValidationError(
            "This client's data was deleted; their chat cannot be saved to the CRM again.",
            code="erased",
        )
    if "\x00" in name:
        raise ValidationError({"name": "Remove the null character from the name."})
    identities = parse_identities(emails=[email], phones=[phone], visitor=conversation.visitor)
    base_url = base_url or public_base_url()
    for attempt in range(2):
        try:
            with transaction.atomic():
                item, created, match, already, held_back = _save_client(
                    actor=actor,
                    conversation=conversation,
                    name=name,
                    identities=identities,
                    kind=kind,
                )
                records = _link_consents(
                    actor=actor, item=item, conversation=conversation, base_url=base_url
                )
        except IntegrityError:
            # A concurrent save linked this conversation first; the retry reuses its item.
            if attempt:
                raise
            continue
        return SaveResult(
            item=item,
            created=created,
            match=match,
            consent_records=records,
            already_saved=already,
            held_back=held_back,
        )
    raise AssertionError("unreachable")


@transaction.atomic
def link_messenger_client(
    *, conversation: Conversation, name: str = "", phone: str = "", actor: User | None = None
) -> CrmItem:
    """Create or reuse the CRM item of a messenger client (matched by messenger id or phone)."""
    try:
        identities = parse_identities(phones=[phone], visitor=conversation.visitor)
    except ValidationError:
        # A messenger may report a number we cannot read; the messenger id still matches.
        identities = parse_identities(visitor=conversation.visitor)
    item, _created, _match, _already, _held = _save_client(
        actor=actor, conversation=conversation, name=name, identities=identities, kind=None
    )
    return item


def preview_match(
    *, conversation: Conversation, email: str = "", phone: str = "", actor: User | None = None
) -> Match | None:
    """Tell which existing item Save to CRM would reuse for ``actor``, ignoring invalid input."""
    link = CrmConversation.objects.select_related("item").filter(conversation=conversation).first()
    if link is not None:
        return Match(item=link.item, matched_by="conversation")
    emails = [email] if email else []
    phones = [phone] if phone else []
    try:
        identities = parse_identities(emails=emails, phones=phones, visitor=conversation.visitor)
    except ValidationError:
        identities = parse_identities(visitor=conversation.visitor)
    return find_match(identities=identities, visitor=conversation.visitor, actor=actor)


# ----- editing, conversion, notes ----------------------------------------------------------


def _identity_displays(item: CrmItem, kind: str) -> list[str]:
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
        "emails": _identity_displays(item, IdentityKind.EMAIL),
        "phones": _identity_displays(item, IdentityKind.PHONE),
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
        _log(item, actor, ChangeAction.UPDATED, changes)
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
    _log(item, actor, ChangeAction.CONVERTED, {"kind": [CrmItemKind.LEAD, CrmItemKind.CONTACT]})
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
    _log(item, actor, ChangeAction.NOTE_ADDED, {"note": text[:200]})
    return note


# ----- deletion and subject access -----------------------------------------------------------


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
            "emails": _identity_displays(item, IdentityKind.EMAIL),
            "phones": _identity_displays(item, IdentityKind.PHONE),
            "messenger_identities": _identity_displays(item, IdentityKind.MESSENGER),
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
