"""Find a connector's platform implementation, its decrypted credentials and its webhook URL."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.urls import reverse

from openline.connectors.base import Platform

# The messenger kinds with a package under openline/connectors/<kind>/ exposing PLATFORM.
KINDS = ("telegram", "whatsapp", "facebook", "viber")
# Where background tasks build absolute URLs when OPENLINE_PUBLIC_URL is empty (development).
DEVELOPMENT_BASE_URL = "http://127.0.0.1:8000"


class UnknownPlatform(LookupError):
    """No messenger platform of that kind."""


def platform_for(kind: str) -> Platform:
    """Return the platform implementation for a connector kind ("telegram", ...)."""
    if kind not in KINDS:
        raise UnknownPlatform(kind)
    # Imported on first use so a platform package's import cost (httpx clients, ...) is paid
    # only by processes that talk to that platform.
    return import_module(f"openline.connectors.{kind}").PLATFORM


def connector_secrets(connector) -> dict:
    """Return the connector's decrypted credentials ({} when none are saved)."""
    if not connector.secrets:
        return {}
    from openline.core.secrets import decrypt_json

    return decrypt_json(connector.secrets)


def public_base_url(base: str = "") -> str:
    """The public base URL: ``base`` if given, else OPENLINE_PUBLIC_URL, else the dev default."""
    return (base or settings.CONFIG.public_url or DEVELOPMENT_BASE_URL).rstrip("/")


def webhook_url(connector, base: str = "") -> str:
    """Return the absolute URL the platform must call for this connector."""
    path = reverse(
        "connectors:webhook", kwargs={"kind": connector.kind, "token": connector.webhook_token}
    )
    return public_base_url(base) + path
