"""The console page of the live chat connector: allowed websites and the embed snippet."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from openline.accounts.models import Role
from openline.accounts.permissions import StaffRequest, role_required
from openline.livechat.origins import CONFIG_KEY, allowed_origins, parse_origins
from openline.livechat.views import public_origin
from openline.openchannels.models import ConnectorKind, OpenChannel
from openline.openchannels.services import set_connector


@role_required(Role.ADMINISTRATOR)
def livechat_settings(request: StaffRequest, pk: int) -> HttpResponse:
    """Configure which websites may show a channel's chat, and show the embed snippet."""
    channel = get_object_or_404(OpenChannel, pk=pk)
    connector = channel.connector(ConnectorKind.LIVECHAT)
    text = "\n".join(allowed_origins(channel))
    errors: list[str] = []
    if request.method == "POST":
        text = request.POST.get("allowed_origins", "")
        try:
            origins = parse_origins(text)
        except ValidationError as exc:
            errors = exc.messages
        else:
            config = dict(connector.config) if connector else {}
            config[CONFIG_KEY] = origins
            set_connector(
                actor=request.user,
                channel=channel,
                kind=ConnectorKind.LIVECHAT,
                is_enabled=connector.is_enabled if connector else True,
                config=config,
            )
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
            "section": "contact_center",
        },
    )
