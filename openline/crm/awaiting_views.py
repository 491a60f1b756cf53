"""The Awaiting consent page: messenger clients who have not confirmed consent yet."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from openline.accounts.models import Role
from openline.accounts.permissions import ACTION, READ, StaffRequest, role_required
from openline.conversations import naming
from openline.conversations.models import Visitor
from openline.core.params import BadParam, is_int, parse_id
from openline.crm import awaiting
from openline.crm.access import can_use_channel
from openline.openchannels.models import OpenChannel

# One page shows this many clients; "Delete all listed" acts on the same rows.
LIMIT = 500


def _channel_filter(request: StaffRequest, raw: str | None) -> OpenChannel | None:
    """Return the channel to filter by: 404-free, 403 for a channel the user does not answer."""
    channel_id = parse_id(raw, name="channel")
    if channel_id is None:
        return None
    channel = awaiting.visible_channels(request.user).filter(pk=channel_id).first()
    if channel is None:
        raise PermissionDenied("You do not answer this Open Channel.")
    return channel


def _back(channel: OpenChannel | None) -> HttpResponse:
    url = reverse("crm:awaiting")
    return redirect(f"{url}?channel={channel.pk}" if channel is not None else url)


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, methods=READ)
def awaiting_list(request: StaffRequest) -> HttpResponse:
    """List messenger clients awaiting consent, filtered by channel."""
    channel = _channel_filter(request, request.GET.get("channel"))
    clients = list(awaiting.awaiting_clients(user=request.user, channel=channel)[: LIMIT + 1])
    # Named as everywhere in the console: the CRM's name, else the messenger profile's.
    names = naming.client_names(v.pk for v in clients[:LIMIT])
    return render(
        request,
        "crm/awaiting.html",
        {
            "clients": clients[:LIMIT],
            "rows": [
                {"visitor": v, "name": naming.label(v, names.get(v.pk)), "known": names.get(v.pk)}
                for v in clients[:LIMIT]
            ],
            "truncated": len(clients) > LIMIT,
            "limit": LIMIT,
            "channels": awaiting.visible_channels(request.user),
            "channel": channel,
            "section": "crm_awaiting",
        },
    )


def _selected(request: StaffRequest, channel: OpenChannel | None) -> tuple[list[Visitor], int]:
    """Return the selected clients that may be deleted here, and how many were refused."""
    if request.POST.get("all") == "1":
        listed = awaiting.awaiting_clients(user=request.user, channel=channel)[:LIMIT]
        return list(listed), 0
    raw_ids = request.POST.getlist("visitor")
    if any(not is_int(raw, minimum=1) for raw in raw_ids):
        raise BadParam("visitor", "choose clients from the list.")
    ids = {int(raw) for raw in raw_ids}
    chosen = list(Visitor.objects.filter(pk__in=ids))
    if any(not can_use_channel(request.user, v.channel_id) for v in chosen):
        raise PermissionDenied("You do not answer this client's Open Channel.")
    deletable = list(awaiting.awaiting_clients(user=request.user).filter(pk__in=ids))
    return deletable, len(ids) - len(deletable)


@role_required(Role.ADMINISTRATOR, Role.OPERATOR, methods=ACTION)
def awaiting_delete(request: StaffRequest) -> HttpResponse:
    """Confirm, then delete the selected clients' data (one confirmation step)."""
    channel = _channel_filter(request, request.POST.get("channel"))
    clients, refused = _selected(request, channel)
    if refused:
        messages.error(
            request,
            f"{refused} selected client(s) cannot be deleted here: they gave consent, were "
            "already deleted, or no longer await consent.",
        )
    if not clients:
        if not refused:
            messages.error(request, "Select at least one client.")
        return _back(channel)
    if request.POST.get("confirm") != "yes":
        previews = [awaiting.deletion_preview(v) for v in clients]
        return render(
            request,
            "crm/awaiting_confirm.html",
            {
                "previews": previews,
                "channel": channel,
                "messages_total": sum(p.messages for p in previews),
                "items_total": sum(len(p.items) for p in previews),
                "section": "crm_awaiting",
            },
        )
    deleted = skipped = 0
    for visitor in clients:
        try:
            awaiting.delete_client_data(
                actor=request.user, visitor=visitor, reason=awaiting.REASON_PAGE
            )
        except ValidationError:
            skipped += 1  # confirmed consent (or was deleted) since the confirmation page
        else:
            deleted += 1
    messages.success(request, f"Deleted the data of {deleted} client(s). Consent records stay.")
    if skipped:
        messages.error(
            request, f"{skipped} client(s) were not deleted: they confirmed consent meanwhile."
        )
    return _back(channel)
