"""Save to CRM: create or reuse the item of a conversation's client and link their consent."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
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
from openline.conversations.models import Conversation
from openline.crm import signals
from openline.crm.access import actor_label, can_use_channel, log_change
from openline.crm.identities import (
    Identities,
    Match,
    add_identities,
    find_match,
    find_matching,
    parse_identities,
)
from openline.crm.models import ChangeAction, CrmConversation, CrmItem, CrmNote, CrmVisitor
from openline.openchannels.models import CrmItemKind
from openline.openchannels.services import consent_settings

OPERATOR_IP_REASON = "Recorded by an operator, not by the client"


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
            channel_settings=consent_settings(conversation.channel),
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
            signals.item_created.send(sender=CrmItem, item=item)
            log_change(item, actor, ChangeAction.CREATED, {"kind": item.kind, "name": item.name})
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
        log_change(
            item, actor, ChangeAction.CONVERTED, {"kind": [CrmItemKind.LEAD, CrmItemKind.CONTACT]}
        )
    added = add_identities(item, identities)
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
        log_change(item, actor, ChangeAction.CONVERSATION_SAVED, changes)
    elif changes:
        log_change(item, actor, ChangeAction.UPDATED, changes)
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
        actor=actor_label(actor),
        how=other.description,
    )
    CrmNote.objects.create(item=other.item, author=None, author_label="Openline", text=text)
    log_change(
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
