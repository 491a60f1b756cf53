"""Template helpers for consent pages: safe links and readable JSON."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlsplit

from django import template
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

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


_SAMPLE = "00000000-0000-0000-0000-000000000000"
_STATE_BADGE = {"given": ("badge-ok", "Given"), "withdrawn": ("badge-warn", "Withdrawn")}


def _link(href: str, text: str, *, external: bool = False) -> str:
    if not href:
        return conditional_escape(text)
    if external:
        return format_html(
            '<a href="{}" rel="noopener noreferrer nofollow" target="_blank">{}</a>', href, text
        )
    return format_html('<a href="{}">{}</a>', href, text)


@register.simple_tag
def record_rows(records) -> str:
    """Render the rows of the Obtained consents table.

    Built in Python rather than with template tags: this page is the registry's hot
    path (50 rows per page over millions of records) and every value is still escaped
    by ``format_html``.
    """
    list_url = reverse("consent:records")
    # One reverse() for the whole page: the detail URL is the list URL plus the record id.
    detail_prefix = reverse("consent:record_detail", kwargs={"record_uuid": _SAMPLE}).removesuffix(
        f"{_SAMPLE}/"
    )
    rows = []
    for r in records:
        detail = f"{detail_prefix}{r.uuid}/"
        source_text = r.source_label or r.get_source_type_display()
        source = _link(source_href(r), source_text, external=r.source_type == "website")
        address_link = address_href(r)
        address_text = r.address or ("Conversation" if address_link else "—")
        if len(address_text) > 80:
            address_text = address_text[:79] + "…"
        address = _link(address_link, address_text, external=not address_link.startswith("/"))
        if r.ip:
            ip = format_html("<code>{}</code>", r.ip)
        else:
            ip = format_html('<span class="muted" title="{}">none</span>', r.ip_missing_reason)
        badge, label = _STATE_BADGE.get(r.state, ("badge-muted", r.state))
        rows.append(
            format_html(
                '<tr><td class="nowrap"><a href="{}" title="Record {}">{}</a></td>'
                '<td><a href="{}?q={}" title="All consents of this user">{}</a></td>'
                '<td>{}<span class="sub">{}</span></td><td class="addr">{}</td><td class="nowrap">{}</td>'
                '<td>{} <span class="sub">v{} · {}</span></td><td><span class="badge {}">{}</span></td>'
                '<td class="nowrap">{}<span class="sub">{}</span></td></tr>',
                detail,
                r.uuid,
                r.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                list_url,
                r.visitor.public_id,
                r.user_display,
                source,
                r.get_source_type_display(),
                address,
                ip,
                r.agreement.name,
                r.version.number,
                r.language,
                badge,
                label,
                r.get_origin_display(),
                r.get_method_display(),
            )
        )
    return mark_safe("".join(rows))  # noqa: S308 - every part above went through format_html
