"""The only write path for Open Channels and their connectors."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction

from openline.accounts import realtime
from openline.accounts.models import User
from openline.openchannels import signals
from openline.openchannels.models import (
    Connector,
    ConnectorKind,
    MessengerConsentMode,
    OpenChannel,
)

CONSENT_REQUIRED_MESSAGE = (
    "Choose a consent (or create a new one) to send the warning about collecting personal data."
)


def consent_settings(channel: OpenChannel) -> dict:
    """Return the channel's consent settings as plain data, for audit and evidence."""
    return {
        "consent_enabled": channel.consent_enabled,
        "agreement_id": channel.agreement_id,
        "agreement_name": channel.agreement.name if channel.agreement else None,
        "messenger_consent_mode": channel.messenger_consent_mode,
        "messenger_warning_text": channel.messenger_warning_text,
        "withdraw_keywords": [w for w in channel.withdraw_keywords.splitlines() if w.strip()],
        "unconfirmed_retention_days": channel.unconfirmed_retention_days,
    }


NO_WITHDRAW_KEYWORD_MESSAGE = (
    "Enter at least one keyword: withdrawing consent must be as easy as giving it."
)
# "Leave as it is" for the messenger settings of update_consent_settings (None means "off").
UNCHANGED: object = object()


def _messenger_settings(
    channel: OpenChannel, *, mode, warning_text, withdraw_keywords, retention_days
) -> list[str]:
    """Apply the messenger consent settings given (not UNCHANGED); return the fields changed."""
    fields = []
    if mode is not UNCHANGED:
        channel.messenger_consent_mode = MessengerConsentMode(mode)
        fields.append("messenger_consent_mode")
    if warning_text is not UNCHANGED:
        text = str(warning_text or "").strip()
        if text and "{link}" not in text:
            # The client must always get the link to the exact text they agree to.
            text = f"{text} {{link}}"
        channel.messenger_warning_text = text
        fields.append("messenger_warning_text")
    if withdraw_keywords is not UNCHANGED:
        lines = str(withdraw_keywords or "").splitlines()
        words = list(dict.fromkeys(" ".join(w.split()) for w in lines if w.strip()))
        if not words:
            raise ValidationError({"withdraw_keywords": NO_WITHDRAW_KEYWORD_MESSAGE})
        channel.withdraw_keywords = "\n".join(words)
        fields.append("withdraw_keywords")
    if retention_days is not UNCHANGED:
        if retention_days is not None and not 1 <= int(retention_days) <= 3650:
            raise ValidationError(
                {"unconfirmed_retention_days": "Enter 1 to 3650 days, or leave it empty."}
            )
        channel.unconfirmed_retention_days = retention_days
        fields.append("unconfirmed_retention_days")
    return fields


def _validate_consent(consent_enabled: bool, agreement) -> None:
    if consent_enabled and agreement is None:
        raise ValidationError({"agreement": CONSENT_REQUIRED_MESSAGE})
    if consent_enabled and not agreement.is_active:
        raise ValidationError({"agreement": "This consent is deactivated; choose an active one."})


@transaction.atomic
def create_open_channel(
    *,
    actor: User,
    name: str,
    operators: Iterable[User] = (),
    connectors: Iterable[str] = (),
    consent_enabled: bool = False,
    agreement=None,
    crm_item_kind: str = "lead",
) -> OpenChannel:
    """Create an Open Channel with its operators, connectors and consent settings."""
    _validate_consent(consent_enabled, agreement)
    channel = OpenChannel(
        name=name, consent_enabled=consent_enabled, agreement=agreement, crm_item_kind=crm_item_kind
    )
    channel.full_clean()
    channel.save()
    channel.operators.set(list(operators))
    for kind in connectors:
        Connector.objects.create(channel=channel, kind=ConnectorKind(kind))
    signals.consent_settings_changed.send(
        sender=OpenChannel,
        channel=channel,
        actor=actor,
        before=None,
        after=consent_settings(channel),
    )
    return channel


@transaction.atomic
def update_open_channel(
    *, actor: User, channel: OpenChannel, name: str, operators: Iterable[User], crm_item_kind: str
) -> OpenChannel:
    """Change an Open Channel's general settings."""
    channel.name = name
    channel.crm_item_kind = crm_item_kind
    channel.full_clean()
    channel.save(update_fields=["name", "crm_item_kind", "updated_at"])
    channel.operators.set(list(operators))
    return channel


@transaction.atomic
def update_consent_settings(
    *,
    actor: User,
    channel: OpenChannel,
    consent_enabled: bool,
    agreement,
    messenger_consent_mode=UNCHANGED,
    messenger_warning_text=UNCHANGED,
    withdraw_keywords=UNCHANGED,
    unconfirmed_retention_days=UNCHANGED,
) -> OpenChannel:
    """Turn the consent warning on or off, choose the consent, set how messengers ask for it."""
    _validate_consent(consent_enabled, agreement)
    channel = (
        OpenChannel.objects.select_for_update(of=("self",))
        .select_related("agreement")
        .get(pk=channel.pk)
    )
    before = consent_settings(channel)
    channel.consent_enabled = consent_enabled
    channel.agreement = agreement
    messenger_fields = _messenger_settings(
        channel,
        mode=messenger_consent_mode,
        warning_text=messenger_warning_text,
        withdraw_keywords=withdraw_keywords,
        retention_days=unconfirmed_retention_days,
    )
    channel.save(update_fields=["consent_enabled", "agreement", "updated_at", *messenger_fields])
    after = consent_settings(channel)
    if before != after:
        signals.consent_settings_changed.send(
            sender=OpenChannel, channel=channel, actor=actor, before=before, after=after
        )
    return channel


@transaction.atomic
def set_channel_active(*, actor: User, channel: OpenChannel, is_active: bool) -> OpenChannel:
    """Deactivate (or reactivate) an Open Channel; its history is kept."""
    channel.is_active = is_active
    channel.save(update_fields=["is_active", "updated_at"])
    return channel


@transaction.atomic
def set_connector(
    *, actor: User, channel: OpenChannel, kind: str, is_enabled: bool, config: dict | None = None
) -> Connector:
    """Enable, disable or configure the Live chat connector of a channel.

    Messengers are never switched on here: they are connected with working credentials on
    their own page (connectors.setup), so a tick box can never make one look connected.
    """
    if ConnectorKind(kind) != ConnectorKind.LIVECHAT:
        raise ValidationError("A messenger is connected with its credentials, not switched on.")
    connector, _ = Connector.objects.select_for_update().get_or_create(
        channel=channel, kind=ConnectorKind(kind)
    )
    connector.is_enabled = is_enabled
    if config is not None:
        connector.config = config
    connector.save()
    return connector


# ----- open console websockets follow channel membership -------------------------------------


def on_operators_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """Make affected operators' open sockets join or leave channel groups (m2m_changed).

    Hung on the signal, not on the services above, so every path that changes membership
    (these services, the admin, ``user.open_channels.add``) is followed without reconnecting.
    """
    if action == "pre_clear":
        # After a clear the removed operators are gone; remember them now.
        if reverse:
            instance._cleared_operators = {instance.pk}
        else:
            instance._cleared_operators = set(instance.operators.values_list("pk", flat=True))
        return
    if action == "post_clear":
        users = instance.__dict__.pop("_cleared_operators", set())
    elif action in ("post_add", "post_remove"):
        users = {instance.pk} if reverse else set(pk_set or ())
    else:
        return
    if users:
        realtime.refresh_user_channels(users)


def on_channel_saved(sender, instance, created, raw=False, **kwargs) -> None:
    """A new Open Channel: administrators' open sockets join its group."""
    if created and not raw:
        realtime.refresh_administrators()
