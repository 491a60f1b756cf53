"""The connector page of one messenger on one Open Channel: credentials, state, disconnect."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from openline.accounts.models import Role
from openline.accounts.permissions import ACTION, StaffRequest, role_required
from openline.connectors import setup
from openline.connectors.registry import platform_for, webhook_url
from openline.connectors.webhooks import signature_failures
from openline.core.secrets import SecretsError
from openline.openchannels.models import (
    ConnectionState,
    ConnectorKind,
    ConnectorMode,
    OpenChannel,
)

# Labels and help for the credential fields the platforms declare (unknown names get a
# label made from the name).
FIELD_TEXT: dict[str, tuple[str, str]] = {
    "bot_token": ("Bot token", "From @BotFather: /newbot or /token."),
    "auth_token": ("Authentication token", "From the Viber Admin Panel: your bot's token."),
    "access_token": ("Access token", "A permanent (system user) access token from Meta."),
    "page_access_token": ("Page access token", "From the Meta app: Messenger → Settings."),
    "app_secret": ("App secret", "Meta app → App settings → Basic; signs every webhook."),
    "verify_token": (
        "Verify token",
        "Leave empty to let Openline make one; paste it into Meta's webhook settings.",
    ),
    "phone_number_id": ("Phone number ID", "WhatsApp → API setup: the number's ID."),
    "page_id": ("Page ID", "The Facebook Page's numeric ID."),
    "business_account_id": ("WhatsApp Business Account ID", ""),
}
STATE_BADGES = {
    ConnectionState.NOT_CONNECTED: "badge-muted",
    ConnectionState.PENDING: "badge-warn",
    ConnectionState.CONNECTED: "badge-ok",
    ConnectionState.ERROR: "badge-danger",
}
# What to check when webhook requests fail the signature check.
SIGNATURE_SECRET = {
    ConnectorKind.WHATSAPP: "app secret",
    ConnectorKind.FACEBOOK: "app secret",
    ConnectorKind.VIBER: "auth token",
    ConnectorKind.TELEGRAM: "bot token (reconnect to register the webhook again)",
}
# Shown in full on the page because it must be pasted elsewhere; it only proves a
# handshake, it cannot read or send anything.
SHOWN_SECRETS = ("verify_token",)


def _label(name: str) -> tuple[str, str]:
    return FIELD_TEXT.get(name, (name.replace("_", " ").capitalize(), ""))


def _masked(value: str) -> str:
    return "saved ••••" + value[-4:] if len(value) >= 12 else "saved ••••"


class ConnectorForm(forms.Form):
    """The platform's fields: secrets as never-prefilled password inputs."""

    def __init__(self, *args, kind: str, stored: dict, config: dict, mode: str, **kwargs):
        super().__init__(*args, **kwargs)
        platform = platform_for(kind)
        self.secret_names = [n for n in platform.secret_fields]
        self.config_names = [n for n in platform.config_fields]
        for name in self.secret_names:
            label, help_text = _label(name)
            saved = str(stored.get(name) or "")
            if saved:
                help_text = f"{_masked(saved)} — leave empty to keep it. {help_text}".strip()
            self.fields[name] = forms.CharField(
                label=label,
                required=False,
                help_text=help_text,
                widget=forms.PasswordInput(
                    render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}
                ),
            )
        for name in self.config_names:
            label, help_text = _label(name)
            self.fields[name] = forms.CharField(
                label=label, required=False, help_text=help_text, initial=config.get(name, "")
            )
        if kind == ConnectorKind.TELEGRAM:
            self.fields["mode"] = forms.ChoiceField(
                label="How Telegram reaches Openline",
                choices=[
                    (ConnectorMode.WEBHOOK, "Webhook (needs a public HTTPS address)"),
                    (ConnectorMode.POLLING, "Long polling (no public address needed)"),
                ],
                initial=mode,
                widget=forms.RadioSelect,
            )


def _channel_and_kind(pk: int, kind: str) -> tuple[OpenChannel, ConnectorKind]:
    channel = get_object_or_404(OpenChannel, pk=pk)
    try:
        connector_kind = ConnectorKind(kind)
    except ValueError:
        raise Http404("Unknown connector") from None
    if connector_kind == ConnectorKind.LIVECHAT:
        raise Http404("Live chat has no credentials")
    return channel, connector_kind


@role_required(Role.ADMINISTRATOR)
def connector_settings(request: StaffRequest, pk: int, kind: str) -> HttpResponse:
    """Show a messenger's connection on an Open Channel and connect it with credentials."""
    channel, connector_kind = _channel_and_kind(pk, kind)
    connector = setup.connector_for(channel=channel, kind=connector_kind)
    try:
        stored = setup.stored_secrets(connector)
        unreadable = False
    except SecretsError:
        stored, unreadable = {}, True
    form = ConnectorForm(
        request.POST or None,
        kind=connector_kind,
        stored=stored,
        config=connector.config or {},
        mode=connector.mode,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            connector = setup.update_secrets(
                actor=request.user,
                connector=connector,
                secrets={name: data.get(name, "") for name in form.secret_names},
                config={name: data.get(name, "") for name in form.config_names},
                mode=data.get("mode") or ConnectorMode.WEBHOOK,
                base=setup.base_url(request),
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            if connector.state == ConnectionState.CONNECTED:
                messages.success(request, f"{connector_kind.label} is connected.")
            elif connector.state == ConnectionState.PENDING:
                messages.warning(
                    request,
                    f"Credentials saved. {connector_kind.label} is waiting for the platform to "
                    "verify the webhook.",
                )
            else:
                messages.error(request, f"{connector_kind.label} could not be connected.")
            return redirect("connector_pages:settings", pk=channel.pk, kind=connector_kind)
    shown = {
        name: str(stored.get(name)) for name in SHOWN_SECRETS if name in stored and stored[name]
    }
    url = ""
    if connector.pk and connector.webhook_token:
        url = webhook_url(connector, setup.base_url(request))
    return render(
        request,
        "connectors/settings.html",
        {
            "channel": channel,
            "kind": connector_kind,
            "connector": connector,
            "form": form,
            "state_badge": STATE_BADGES[ConnectionState(connector.state)],
            "webhook_url": url,
            "shown_secrets": [(_label(name)[0], value) for name, value in shown.items()],
            "unreadable": unreadable,
            "has_credentials": bool(connector.pk and connector.secrets),
            "polling": connector.mode == ConnectorMode.POLLING,
            "signature_failures": (
                signature_failures(connector_id=connector.pk) if connector.pk else 0
            ),
            "signature_secret": SIGNATURE_SECRET.get(connector_kind, "credentials"),
            "section": "contact_center",
        },
    )


@role_required(Role.ADMINISTRATOR, methods=ACTION)
def connector_disconnect(request: StaffRequest, pk: int, kind: str) -> HttpResponse:
    """Disconnect a messenger from an Open Channel and forget its credentials."""
    channel, connector_kind = _channel_and_kind(pk, kind)
    connector = channel.connectors.filter(kind=connector_kind).first()
    if connector is None or (not connector.secrets and not connector.webhook_token):
        messages.info(request, f"{connector_kind.label} is not connected.")
    else:
        setup.disconnect(actor=request.user, connector=connector)
        messages.success(
            request, f"{connector_kind.label} disconnected; its credentials were deleted."
        )
    return redirect("connector_pages:settings", pk=channel.pk, kind=connector_kind)
