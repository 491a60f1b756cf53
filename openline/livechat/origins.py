"""The websites allowed to show a channel's chat (``frame-ancestors``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from openline.openchannels.models import ConnectorKind

CONFIG_KEY = "allowed_origins"
MAX_ORIGINS = 50


def allowed_origins(channel) -> list[str]:
    """Return the origins allowed to embed the channel's chat (empty: nowhere)."""
    connector = channel.connector(ConnectorKind.LIVECHAT)
    if connector is None:
        return []
    return [o for o in connector.config.get(CONFIG_KEY, []) if isinstance(o, str)]


def parse_origins(text: str) -> list[str]:
    """Parse one origin per line ("https://www.example.com"), normalised; raise ValidationError."""
    origins: list[str] = []
    errors: list[str] = []
    for raw in text.replace(",", "\n").splitlines():
        item = raw.strip()
        if not item:
            continue
        try:
            parts = urlsplit(item)
            port = parts.port
        except ValueError:
            errors.append(f"{item!r} is not a web address.")
            continue
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host or "*" in host.replace("*.", "", 1):
            errors.append(f"{item!r}: write an origin like https://www.example.com")
            continue
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            errors.append(f"{item!r}: leave out the path; only scheme, host and port count.")
            continue
        if ":" in host:
            # Chromium ignores IPv6 literals in frame-ancestors: the chat would never open there.
            errors.append(
                f"{item!r}: browsers do not accept IPv6 addresses here; use the site's host name."
            )
            continue
        if any(c in host for c in " ;'\""):
            errors.append(f"{item!r} is not a web address.")
            continue
        origin = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
        if origin not in origins:
            origins.append(origin)
    if len(origins) > MAX_ORIGINS:
        errors.append(f"At most {MAX_ORIGINS} websites.")
    if errors:
        raise ValidationError(errors)
    return origins
