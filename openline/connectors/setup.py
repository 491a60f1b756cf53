"""Connect, reconfigure and disconnect a messenger: the only write path for its credentials.

The platform is called outside any database transaction (it is network I/O that may take
the whole timeout); the credentials are stored before the call, so a webhook the platform
sends right after ``setWebhook`` already finds its secret, and the outcome is recorded after.
A connector shows "Connected" only when the platform confirmed the credentials.
"""

from __future__ import annotations

import logging
import secrets as token_source
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from openline.connectors.base import TransportError
from openline.connectors.registry import platform_for, webhook_url
from openline.connectors.webhooks import forget_signature_failures
from openline.core import secrets as vault
from openline.core.logging import redact
from openline.openchannels.models import (
    ConnectionState,
    Connector,
    ConnectorKind,
    ConnectorMode,
    OpenChannel,
)

log = logging.getLogger(__name__)
# Who changed which connector, and which fields: never a value.
audit_log = logging.getLogger("openline.audit.connectors")

MESSENGERS = tuple(kind for kind in ConnectorKind if kind != ConnectorKind.LIVECHAT)
# Credentials Openline makes up itself when the administrator leaves them empty.
GENERATED_SECRETS = ("verify_token",)
# Development fallback when neither OPENLINE_PUBLIC_URL nor a request tells the address.
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def base_url(request=None) -> str:
    """Return the public base URL: OPENLINE_PUBLIC_URL, else the request's, else localhost."""
    configured = getattr(settings.CONFIG, "public_url", "") or ""
    if configured:
        return configured.rstrip("/")
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return DEFAULT_BASE_URL


def connector_for(*, channel: OpenChannel, kind: str) -> Connector:
    """Return the channel's connector of ``kind``, unsaved (not connected) if there is none."""
    existing = Connector.objects.filter(channel=channel, kind=kind).first()
    return existing or Connector(channel=channel, kind=ConnectorKind(kind), is_enabled=False)


def stored_secrets(connector: Connector) -> dict:
    """Return the connector's decrypted credentials ({} when none are stored)."""
    return vault.decrypt_json(connector.secrets) if connector.secrets else {}


def scrub(text: str, secret_values: dict) -> str:
    """Remove every credential value (and anything token-shaped) from an error text."""
    cleaned = str(text)
    for value in secret_values.values():
        if isinstance(value, str) and len(value) >= 4:
            cleaned = cleaned.replace(value, "[redacted]")
    return redact(cleaned)[:300]


def _validate(*, kind: str, secrets: dict, config: dict, mode: str) -> None:
    platform = platform_for(kind)
    errors: dict[str, list[str]] = {}
    for name in platform.secret_fields:
        if name in GENERATED_SECRETS:
            continue
        if not str(secrets.get(name) or "").strip():
            errors[name] = ["This field is required."]
    for name in platform.config_fields:
        if not str(config.get(name) or "").strip():
            errors[name] = ["This field is required."]
    if mode not in ConnectorMode.values:
        errors["mode"] = ["Unknown mode."]
    elif mode == ConnectorMode.POLLING and kind != ConnectorKind.TELEGRAM:
        errors["mode"] = ["Only Telegram can run by long polling."]
    if errors:
        raise ValidationError(errors)


def _audit(*, actor, connector: Connector, action: str, fields: list[str] | None = None) -> None:
    audit_log.info(
        "connector %s: %s on channel %s by %s (state %s%s)",
        connector.kind,
        action,
        connector.channel_id,
        getattr(actor, "username", None) or "system",
        connector.state,
        f"; changed: {', '.join(sorted(fields))}" if fields else "",
    )


def connect(
    *,
    actor,
    connector: Connector,
    secrets: dict,
    config: dict,
    mode: str = ConnectorMode.WEBHOOK,
    base: str = "",
) -> Connector:
    """Store a messenger's credentials, register with the platform and record the outcome."""
    kind = ConnectorKind(connector.kind)
    if kind == ConnectorKind.LIVECHAT:
        raise ValidationError("Live chat has no credentials to connect.")
    secrets = {name: str(value).strip() for name, value in secrets.items() if value is not None}
    config = {name: value for name, value in config.items() if value is not None}
    _validate(kind=kind, secrets=secrets, config=config, mode=mode)
    platform = platform_for(kind)
    for name in GENERATED_SECRETS:
        if name in platform.secret_fields and not secrets.get(name):
            secrets[name] = token_source.token_urlsafe(24)
    if kind == ConnectorKind.TELEGRAM:
        # Telegram echoes it in X-Telegram-Bot-Api-Secret-Token on every webhook call; a new
        # one per connect makes an old registration (or a leaked URL) stop working.
        secrets["secret_token"] = token_source.token_urlsafe(32)

    with transaction.atomic():
        row, _created = Connector.objects.select_for_update().get_or_create(
            channel_id=connector.channel_id, kind=kind
        )
        try:
            old = stored_secrets(row) if row.secrets else {}
        except vault.SecretsError:
            old = {}  # unreadable (a lost key): replaced now
        # Meta confirms the webhook only when the administrator verifies it in the Meta app;
        # new credentials behind the same URL and verify token leave that confirmation valid.
        # A new app secret does not: the handshake never proves it, only a signed event does.
        confirmed_before = (
            row.state == ConnectionState.CONNECTED
            and row.mode == mode
            and "verify_token" in secrets
            and old.get("verify_token") == secrets.get("verify_token")
            and old.get("app_secret") == secrets.get("app_secret")
        )
        connected_since = row.connected_at
        row.secrets = vault.encrypt_json(secrets)
        row.config = {**(row.config or {}), **config}
        row.mode = mode
        row.is_enabled = True
        if not row.webhook_token:
            row.webhook_token = token_source.token_urlsafe(32)
        row.state = ConnectionState.PENDING
        row.save()
        _audit(
            actor=actor,
            connector=row,
            action="credentials saved",
            fields=sorted(set(secrets) | set(old) | set(config)),
        )

    # The failures counted so far were checked against the old credentials.
    forget_signature_failures(connector_id=row.pk)

    polling = kind == ConnectorKind.TELEGRAM and mode == ConnectorMode.POLLING
    # The platform helpers take "" to mean "no webhook" (Telegram: deleteWebhook for polling).
    url = "" if polling else webhook_url(row, base or base_url())
    state, error, result = ConnectionState.ERROR, "", None
    try:
        result = platform.connect(secrets=dict(secrets), config=dict(row.config), webhook_url=url)
    except TransportError as exc:
        error = scrub(exc.message or "The platform refused the credentials.", secrets)
    except Exception as exc:  # noqa: BLE001 - any failure must leave an honest state
        log.warning("connecting %s failed: %s", kind, type(exc).__name__)
        error = f"Could not reach the platform ({type(exc).__name__})."
    else:
        state = ConnectionState.CONNECTED if result.confirmed else ConnectionState.PENDING

    with transaction.atomic():
        row = Connector.objects.select_for_update().get(pk=row.pk)
        now = timezone.now()
        if state == ConnectionState.PENDING and row.state == ConnectionState.CONNECTED:
            # Meta's handshake arrived while the platform was being called: keep it.
            state, connected_since = ConnectionState.CONNECTED, row.connected_at
        elif state == ConnectionState.PENDING and confirmed_before:
            state = ConnectionState.CONNECTED
        else:
            connected_since = None
        row.state = state
        if state == ConnectionState.ERROR:
            row.last_error = error
            row.last_error_at = now
            row.connected_at = None
        else:
            row.last_error = ""
            facts: dict[str, Any] = dict(result.config) if result else {}
            if result and result.detail:
                facts["detail"] = result.detail
            if _bot_changed(row.config, facts):
                # Update ids are per bot: another bot's offset would skip (or wait past) all
                # of this bot's updates. A poller still holding the old bot's lease loses it,
                # so its late answer cannot write the old offset back.
                row.poll_offset = 0
                row.poller_owner = ""
                row.poller_lease_until = None
            row.config = {**row.config, **facts}
            if state == ConnectionState.CONNECTED:
                row.connected_at = connected_since or now
            else:
                row.connected_at = None
        row.save()
        _audit(actor=actor, connector=row, action=f"connect ({state})")
    return row


def _bot_changed(stored: dict | None, facts: dict) -> bool:
    """Tell whether connect() reported another Telegram bot than the stored one."""
    if "bot_id" not in facts:
        return False
    return str((stored or {}).get("bot_id") or "") != str(facts["bot_id"] or "")


def update_secrets(
    *,
    actor,
    connector: Connector,
    secrets: dict,
    config: dict | None = None,
    mode: str | None = None,
    base: str = "",
) -> Connector:
    """Change some credentials (an empty field keeps the stored value) and reconnect."""
    kept = stored_secrets(connector) if connector.pk and connector.secrets else {}
    # Openline's own per-connect secret is made anew by connect(); never carried over here.
    kept.pop("secret_token", None)
    merged = {
        **kept,
        **{name: value for name, value in secrets.items() if str(value or "").strip()},
    }
    merged_config = {**(connector.config or {}), **(config or {})}
    return connect(
        actor=actor,
        connector=connector,
        secrets=merged,
        config=merged_config,
        mode=mode or connector.mode,
        base=base,
    )


def disconnect(*, actor, connector: Connector) -> Connector:
    """Unregister from the platform (best effort), forget the credentials, stop receiving."""
    try:
        stored = stored_secrets(connector) if connector.secrets else {}
    except vault.SecretsError:
        stored = {}  # unreadable credentials cannot unregister anything; forget them anyway
    if stored and connector.kind != ConnectorKind.LIVECHAT:
        try:
            platform_for(connector.kind).disconnect(secrets=stored, config=dict(connector.config))
        except Exception as exc:  # noqa: BLE001 - the local disconnect must happen regardless
            log.warning("unregistering %s failed: %s", connector.kind, type(exc).__name__)
    with transaction.atomic():
        row = Connector.objects.select_for_update().get(pk=connector.pk)
        row.secrets = ""
        row.webhook_token = None
        row.state = ConnectionState.NOT_CONNECTED
        row.connected_at = None
        row.last_error = ""
        row.poller_owner = ""
        row.poller_lease_until = None
        row.is_enabled = False
        row.save()
        _audit(actor=actor, connector=row, action="disconnected")
    return row
