"""The console page of the live chat connector: appearance, working hours, allowed websites,
the embed snippet and a live preview of the widget."""

from __future__ import annotations

import logging
from datetime import datetime

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from openline.accounts.models import Role
from openline.accounts.permissions import StaffRequest, role_required
from openline.livechat.origins import CONFIG_KEY, allowed_origins, parse_origins
from openline.livechat.views import public_origin
from openline.openchannels import hours
from openline.openchannels.appearance import update_appearance
from openline.openchannels.forms import AppearanceForm
from openline.openchannels.models import ConnectorKind, OpenChannel
from openline.openchannels.services import set_connector

audit_log = logging.getLogger("openline.audit.openchannels")
NO_WEBSITE_WARNING = "Add the website that will show the chat, or the pasted snippet will not open."


def _save_origins(request: StaffRequest, channel: OpenChannel, connector, text: str) -> list[str]:
    """Save the allowed websites; return the errors (none: saved)."""
    try:
        origins = parse_origins(text)
    except ValidationError as exc:
        return exc.messages
    before = allowed_origins(channel)
    config = dict(connector.config) if connector else {}
    config[CONFIG_KEY] = origins
    set_connector(
        actor=request.user,
        channel=channel,
        kind=ConnectorKind.LIVECHAT,
        is_enabled=connector.is_enabled if connector else True,
        config=config,
    )
    if before != origins:
        audit_log.info(
            "channel %s allowed websites changed by %s: %s -> %s",
            channel.pk,
            request.user.get_username(),
            before,
            origins,
        )
    return []


def _hours_now(channel: OpenChannel) -> dict:
    """Return the channel's hours state with the next opening written for people."""
    state = hours.hours_state(channel)
    if state["next_open"]:
        when = datetime.fromisoformat(state["next_open"])
        state["next_open_label"] = f"{when:%A} {when:%H:%M} ({channel.hours_timezone})"
    return state


@role_required(Role.ADMINISTRATOR)
def livechat_settings(request: StaffRequest, pk: int) -> HttpResponse:
    """Configure how a channel's chat looks, when it is open and which websites may show it."""
    channel = get_object_or_404(OpenChannel, pk=pk)
    connector = channel.connector(ConnectorKind.LIVECHAT)
    text = "\n".join(allowed_origins(channel))
    errors: list[str] = []
    posted = request.POST.get("form", "origins") if request.method == "POST" else None
    appearance_form = AppearanceForm(
        request.POST if posted == "appearance" else None,
        initial=AppearanceForm.initial_for(channel),
    )
    if posted == "appearance":
        if appearance_form.is_valid():
            try:
                update_appearance(actor=request.user, channel=channel, **appearance_form.settings())
            except ValidationError as exc:
                for field, field_errors in exc.message_dict.items():
                    target = field if field in appearance_form.fields else None
                    appearance_form.add_error(target, field_errors)
            else:
                messages.success(request, "Appearance and working hours saved.")
                return redirect(reverse("conversations:livechat_settings", args=[channel.pk]))
    elif posted == "origins":
        text = request.POST.get("allowed_origins", "")
        errors = _save_origins(request, channel, connector, text)
        if not errors:
            messages.success(request, "Live chat settings saved.")
            return redirect("conversations:livechat_settings", pk=channel.pk)
    snippet = f'<script src="{public_origin(request)}/widget/{channel.code}.js" async></script>'
    return render(
        request,
        "livechat/settings.html",
        {
            "channel": channel,
            "connector": connector,
            "origins_text": text,
            "errors": errors,
            "snippet": snippet,
            "no_websites": not allowed_origins(channel),
            "no_websites_warning": NO_WEBSITE_WARNING,
            "form": appearance_form,
            "timezones": hours.timezone_choices(),
            "hours_now": _hours_now(channel),
            "preview_url": reverse("livechat_public:frame", kwargs={"code": channel.code})
            + "?preview=1",
            "section": "contact_center",
        },
        status=200,
    )
