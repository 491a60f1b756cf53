"""CRM pages: the list of leads and contacts, the item page, Save to CRM, deletion, export."""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef, Prefetch, Subquery
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from openline.accounts.models import Role
from openline.accounts.permissions import READ, StaffRequest, role_required
from openline.consent.models import ConsentOrigin, ConsentRecord, ConsentState
from openline.conversations.models import Conversation, Visitor
from openline.core.params import parse_int, strict_params
from openline.crm import services
from openline.crm.forms import ItemFilterForm, ItemForm, NoteForm, SaveToCrmForm
from openline.crm.models import (
    CrmConversation,
    CrmErasure,
    CrmIdentity,
    CrmItem,
    CrmVisitor,
    IdentityKind,
)
from openline.crm.naming import item_name, matching_items
from openline.crm.prefill import prefill_for
from openline.openchannels.models import CrmItemKind, OpenChannel

PAGE_SIZE = 25


def _form_errors_from(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def _item_for(request: StaffRequest, pk: int) -> CrmItem:
    """Fetch an item the user may see: 404 if unknown, 403 if another channel's."""
    item = get_object_or_404(CrmItem.objects.select_related("source_channel", "responsible"), pk=pk)
    if not services.can_see_item(request.user, item):
        raise PermissionDenied("This client belongs to an Open Channel you do not answer.")
    return item


def _latest_consent_state():
    return Subquery(
        ConsentRecord.objects.filter(visitor__crm_link__item=OuterRef("pk"))
        .order_by("-created_at", "-id")
        .values("state")[:1]
    )


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, methods=READ)
@strict_params
def item_list(request: StaffRequest) -> HttpResponse:
    """List leads and contacts with search, filters and keyset pagination (newest first)."""
    channels = OpenChannel.objects.all()
    if request.user.role != Role.ADMINISTRATOR:
        channels = channels.filter(operators=request.user)
    form = ItemFilterForm(request.GET or None, channels=channels)
    items = services.visible_items(request.user).select_related("source_channel", "responsible")
    filters = form.cleaned_data if form.is_valid() else {}
    query = (filters.get("q") or "").strip()
    if query:
        # The same matching as the inbox search by client (crm.naming).
        items = items.filter(matching_items(query))
    if filters.get("kind"):
        items = items.filter(kind=filters["kind"])
    if filters.get("channel"):
        items = items.filter(source_channel=filters["channel"])
    consent = filters.get("consent")
    if consent in (ConsentState.GIVEN, ConsentState.WITHDRAWN):
        items = items.filter(pk__in=services.items_with_latest_consent_state(consent))
    elif consent == "none":
        items = items.exclude(
            Exists(
                CrmVisitor.objects.filter(
                    item=OuterRef("pk"), visitor__consent_records__isnull=False
                )
            )
        )

    # Keyset pagination on the id: stable while items are added, no OFFSET scans.
    after = parse_int(request.GET.get("after"), name="after")
    before = parse_int(request.GET.get("before"), name="before")
    if before is not None:
        page = list(items.filter(pk__gt=before).order_by("pk")[: PAGE_SIZE + 1])
        has_newer = len(page) > PAGE_SIZE
        page = list(reversed(page[:PAGE_SIZE]))
        has_older = items.filter(pk__lt=page[-1].pk).exists() if page else False
    else:
        if after is not None:
            items = items.filter(pk__lt=after)
        page = list(items.order_by("-pk")[: PAGE_SIZE + 1])
        has_older = len(page) > PAGE_SIZE
        page = page[:PAGE_SIZE]
        has_newer = after is not None and bool(page)
    ids = [item.pk for item in page]
    states = dict(
        CrmItem.objects.filter(pk__in=ids)
        .annotate(consent_state=_latest_consent_state())
        .values_list("pk", "consent_state")
    )
    identities: dict[int, list[CrmIdentity]] = {}
    for identity in CrmIdentity.objects.filter(item_id__in=ids):
        identities.setdefault(identity.item_id, []).append(identity)
    rows = [
        {
            "item": item,
            "consent_state": states.get(item.pk),
            "emails": [i for i in identities.get(item.pk, []) if i.kind == IdentityKind.EMAIL],
            "phones": [i for i in identities.get(item.pk, []) if i.kind == IdentityKind.PHONE],
            "messengers": [
                i for i in identities.get(item.pk, []) if i.kind == IdentityKind.MESSENGER
            ],
        }
        for item in page
    ]
    params = request.GET.copy()
    params.pop("after", None)
    params.pop("before", None)
    base = params.urlencode()
    older_url = f"?{base + '&' if base else ''}after={page[-1].pk}" if has_older and page else ""
    newer_url = f"?{base + '&' if base else ''}before={page[0].pk}" if has_newer and page else ""
    return render(
        request,
        "crm/item_list.html",
        {
            "form": form,
            "rows": rows,
            "older_url": older_url,
            "newer_url": newer_url,
            "filtered": bool(query or filters.get("kind") or filters.get("channel") or consent),
            "section": "crm",
        },
    )


def _consent_line(
    records: Sequence[ConsentRecord], conversations: Sequence[Conversation]
) -> dict | None:
    """Find where consent was obtained: the first given record from the client themselves."""
    for record in records:
        if record.state == ConsentState.GIVEN and record.origin != ConsentOrigin.CRM:
            chat = record.conversation
            if chat is None:
                started = [c for c in conversations if c.visitor_id == record.visitor_id]
                chat = min(started, key=lambda c: c.started_at) if started else None
            return {"record": record, "chat": chat, "page": record.address}
    return None


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, methods=READ)
def item_detail(request: StaffRequest, pk: int) -> HttpResponse:
    """Show an item: its data, conversations, consents, notes and change history."""
    erasure = CrmErasure.objects.filter(item_id_deleted=pk).first()
    if erasure is not None:
        # Consent records keep linking here as their Source: say what happened.
        return _already_deleted(request, erasure)
    item = _item_for(request, pk)
    visitors = list(Visitor.objects.filter(crm_link__item=item))
    conversations = list(
        Conversation.objects.filter(visitor__in=visitors)
        .select_related("channel", "visitor", "assignee")
        .annotate(message_count=Count("messages"))
        .order_by("-started_at", "-pk")
    )
    records = list(
        ConsentRecord.objects.filter(visitor__in=visitors)
        .select_related("agreement", "version", "conversation", "visitor")
        .order_by("created_at", "id")
    )
    identities = list(item.identities.all())
    context = {
        "item": item,
        "title": item_name(item, visitors),
        "visitors": visitors,
        "conversations": conversations,
        "records": records,
        "consent_line": _consent_line(records, conversations),
        "emails": [i for i in identities if i.kind == IdentityKind.EMAIL],
        "phones": [i for i in identities if i.kind == IdentityKind.PHONE],
        "messengers": [i for i in identities if i.kind == IdentityKind.MESSENGER],
        "notes": item.notes.all(),
        "changes": [{"change": c, "lines": describe_change(c)} for c in item.changes.all()[:50]],
        "note_form": NoteForm(),
        "can_delete": services.can_delete(request.user, item),
        "can_export": request.user.role == Role.ADMINISTRATOR,
        "record_url": _record_url_maker(request.user),
        "section": "crm",
    }
    context["records_rows"] = [{"record": r, "url": context["record_url"](r)} for r in records]
    return render(request, "crm/item_detail.html", context)


CHANGE_LABELS = {
    "name": "Name",
    "responsible": "Responsible operator",
    "emails": "Emails",
    "phones": "Phones",
    "kind": "Kind",
    "note": "Note",
}


def _plain(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    if value in CrmItemKind.values:
        return CrmItemKind(value).label
    return str(value) if value not in (None, "") else "—"


def describe_change(change) -> list[str]:
    """Turn a change's JSON into readable lines: "Name: Jane → Jane Doe"."""
    lines = []
    for key, value in (change.changes or {}).items():
        if key == "identities_added":
            lines.append("Added " + _plain(value))
        elif key == "conversation":
            lines.append(f"Chat #{value}")
        elif key == "identities_held_back":
            lines.append("Not added, they belong to another client: " + _plain(value))
        elif key == "possible_duplicate":
            lines.append(f"Possible duplicate of item #{value}")
        elif key == "matched_by":
            lines.append(f"Matched by {services.MATCH_WORDS.get(value, value)}")
        elif isinstance(value, list) and len(value) == 2 and key in CHANGE_LABELS:
            lines.append(f"{CHANGE_LABELS[key]}: {_plain(value[0])} → {_plain(value[1])}")
        else:
            lines.append(f"{CHANGE_LABELS.get(key, key)}: {_plain(value)}")
    return lines


def _record_url_maker(user):
    """Link records to their page in the registry, which administrators (and auditors) open."""
    if user.role != Role.ADMINISTRATOR:
        return lambda record: ""
    return lambda record: reverse("consent:record_detail", kwargs={"record_uuid": record.uuid})


@role_required(Role.ADMINISTRATOR, Role.OPERATOR)
def item_edit(request: StaffRequest, pk: int) -> HttpResponse:
    """Edit an item's name, responsible operator, emails and phones."""
    item = _item_for(request, pk)
    identities = list(item.identities.all())
    initial = {
        "name": item.name,
        "responsible": item.responsible,
        "emails": "\n".join(i.display for i in identities if i.kind == IdentityKind.EMAIL),
        "phones": "\n".join(i.display for i in identities if i.kind == IdentityKind.PHONE),
    }
    form = ItemForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_item(actor=request.user, item=item, **form.cleaned_data)
        except ValidationError as exc:
            _form_errors_from(form, exc)
        else:
            messages.success(request, "Changes saved.")
            return redirect("crm:item", pk=item.pk)
    return render(request, "crm/item_edit.html", {"item": item, "form": form, "section": "crm"})


@role_required(Role.ADMINISTRATOR, Role.OPERATOR)
@require_POST
def item_convert(request: StaffRequest, pk: int) -> HttpResponse:
    """Convert a lead to a contact."""
    item = _item_for(request, pk)
    try:
        services.convert_to_contact(actor=request.user, item=item)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Lead converted to {item.label.replace('Lead', 'contact')}.")
    return redirect("crm:item", pk=item.pk)


@role_required(Role.ADMINISTRATOR, Role.OPERATOR)
@require_POST
def item_note(request: StaffRequest, pk: int) -> HttpResponse:
    """Add a note to an item."""
    item = _item_for(request, pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            services.add_note(actor=request.user, item=item, text=form.cleaned_data["text"])
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Note added.")
    else:
        messages.error(request, "Write a note first (at most 5000 characters).")
    return redirect(reverse("crm:item", kwargs={"pk": item.pk}) + "#notes")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _already_deleted(request: StaffRequest, erasure: CrmErasure) -> HttpResponse:
    return render(
        request,
        "crm/item_deleted.html",
        {"erasure": erasure, "section": "crm"},
        status=410,
    )


@role_required(Role.ADMINISTRATOR, Role.OPERATOR)
def item_delete(request: StaffRequest, pk: int) -> HttpResponse:
    """Confirm, then delete the client's data; a second attempt says it is already gone."""
    item = CrmItem.objects.filter(pk=pk).first()
    if item is None:
        erasure = CrmErasure.objects.filter(item_id_deleted=pk).first()
        if erasure is None:
            raise Http404("No such CRM item.")
        return _already_deleted(request, erasure)
    item = _item_for(request, pk)
    if not services.can_delete(request.user, item):
        raise PermissionDenied(
            "Only an administrator can delete this client's data (operators may delete "
            "messenger clients who never confirmed consent)."
        )
    if request.method == "POST":
        try:
            erasure = services.delete_client_data(actor=request.user, item_id=item.pk)
        except services.AlreadyDeleted as exc:
            if exc.erasure is None:
                raise Http404("No such CRM item.") from None
            return _already_deleted(request, exc.erasure)
        messages.success(
            request,
            f"{erasure.item_label} deleted: {_count(erasure.counts['messages'], 'message')} "
            f"removed, {_count(erasure.counts['consent_records_kept'], 'consent record')} "
            "kept as proof.",
        )
        return redirect("crm:items")
    summary = services.deletion_summary(item)
    return render(
        request, "crm/item_delete.html", {"item": item, "summary": summary, "section": "crm"}
    )


@role_required(Role.ADMINISTRATOR, methods=READ)
def item_export(request: StaffRequest, pk: int) -> HttpResponse:
    """Download everything held about the client as JSON (GDPR Art. 15)."""
    item = _item_for(request, pk)
    data = services.subject_access_export(actor=request.user, item=item)
    response = HttpResponse(
        json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json"
    )
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = (
        f'attachment; filename="openline-subject-access-{item.kind}-{item.pk}-{stamp}.json"'
    )
    return response


@role_required(Role.ADMINISTRATOR, Role.OPERATOR)
def save_conversation(request: StaffRequest, conversation_id: int) -> HttpResponse:
    """Save to CRM: a short form prefilled with what the client gave in the chat."""
    conversation = get_object_or_404(
        Conversation.objects.select_related("visitor", "channel"), pk=conversation_id
    )
    if not services.can_use_channel(request.user, conversation.channel_id):
        raise PermissionDenied("You do not answer this conversation's Open Channel.")
    visitor = conversation.visitor
    link = (
        CrmConversation.objects.select_related("item")
        .prefetch_related(Prefetch("item__identities"))
        .filter(conversation=conversation)
        .first()
    )
    if link is not None:
        identities = list(link.item.identities.all())
        initial = {
            "name": link.item.name,
            "email": next((i.display for i in identities if i.kind == IdentityKind.EMAIL), ""),
            "phone": next((i.display for i in identities if i.kind == IdentityKind.PHONE), ""),
            "kind": link.item.kind,
        }
        found = None
    else:
        # The profile's fields, else what the client wrote in the chat; the operator checks.
        found = prefill_for(conversation)
        initial = {**found.initial(), "kind": conversation.channel.crm_item_kind}
    form = SaveToCrmForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            result = services.save_conversation_to_crm(
                actor=request.user,
                conversation=conversation,
                base_url=services.public_base_url(request),
                **form.cleaned_data,
            )
        except ValidationError as exc:
            _form_errors_from(form, exc)
        else:
            messages.success(request, _saved_message(result))
            return redirect("crm:item", pk=result.item.pk)
    records = list(
        ConsentRecord.objects.filter(visitor=visitor)
        .select_related("agreement", "version", "conversation")
        .order_by("created_at", "id")
    )
    data = form.data if form.is_bound else initial
    match = services.preview_match(
        conversation=conversation,
        email=data.get("email", ""),
        phone=data.get("phone", ""),
        actor=request.user,
    )
    return render(
        request,
        "crm/save_conversation.html",
        {
            "conversation": conversation,
            "visitor": visitor,
            "form": form,
            "match": match,
            "link": link,
            "found": found,
            "consent_line": _consent_line(records, [conversation]),
            "current_consent": next((r for r in reversed(records)), None),
            "section": "crm",
        },
    )


def _saved_message(result: services.SaveResult) -> str:
    if result.already_saved:
        text = f"This chat was already saved to {result.item.label}; the item is up to date."
    elif result.created:
        text = f"Saved to CRM as {result.item.label}."
    else:
        how = result.match.description if result.match else "its data"
        text = f"Linked to the existing {result.item.label} (matched by {how})."
    if result.held_back:
        text += (
            f" Not added: {', '.join(result.held_back)}, already on another client's item;"
            " an administrator was told."
        )
    if result.consent_records:
        text += " The client's consent is now linked to this CRM item."
    return text
