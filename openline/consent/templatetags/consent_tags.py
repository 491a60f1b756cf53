"""Template helpers for consent pages: safe links and readable JSON."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from django import template

register = template.Library()


@register.filter
def safe_href(url: str) -> str:
    """Return the URL if it is http(s), else "" (client-supplied addresses never become javascript: links)."""
    if not url:
        return ""
    try:
        parts = urlsplit(str(url).strip())
    except ValueError:
        return ""
    return str(url).strip() if parts.scheme in ("http", "https") and parts.netloc else ""


@register.filter
def source_href(record) -> str:
    """Link a record's Source: the conversation, the CRM item or the website page."""
    if record.source_type == "conversation" and (
        record.conversation_id or record.source_id.isdigit()
    ):
        return f"/console/inbox/{record.conversation_id or record.source_id}/"
    if record.source_type == "crm_item" and record.source_id:
        return f"/console/crm/items/{record.source_id}/"
    if record.source_type == "website":
        return safe_href(record.address)
    return ""


@register.filter
def address_href(record) -> str:
    """Link a record's Address: the page URL, or the conversation inside Openline."""
    href = safe_href(record.address)
    if href:
        return href
    if record.address.startswith("/console/"):
        return record.address
    if record.conversation_id:
        return f"/console/inbox/{record.conversation_id}/"
    return ""


@register.filter
def pretty_json(value) -> str:
    """Format JSON for reading (escaped by the template as usual)."""
    if value is None:
        return "—"
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.filter
def short(value, length: int = 12) -> str:
    """Shorten a hash for display."""
    text = str(value or "")
    return text if len(text) <= length else text[:length] + "…"


@register.filter
def thousands(value) -> str:
    """Format a count with thousands separators."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
