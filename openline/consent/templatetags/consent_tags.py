"""Template helpers for consent pages: safe links and readable JSON."""

from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import urlsplit

from django import template
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

from openline.consent.display import SETTING_LABELS
from openline.consent.display import show as show_value

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


_INBOX_LINK = re.compile(r"^/console/inbox/(\d+)/$")


def _chat_link(conversation_id, for_auditor: bool) -> str:
    # Auditors have no inbox: they read a conversation's read-only transcript instead.
    kind = "transcripts" if for_auditor else "inbox"
    return f"/console/{kind}/{conversation_id}/"


@register.filter
def source_href(record, for_auditor: bool = False) -> str:
    """Link a record's Source: the conversation, the CRM item or the website page."""
    if record.source_type == "conversation" and (
        record.conversation_id or record.source_id.isdigit()
    ):
        return _chat_link(record.conversation_id or record.source_id, bool(for_auditor))
    if record.source_type == "crm_item" and record.source_id and not for_auditor:
        return f"/console/crm/items/{record.source_id}/"
    if record.source_type == "website":
        return safe_href(record.address)
    return ""


@register.filter
def address_href(record, for_auditor: bool = False) -> str:
    """Link a record's Address: the page URL, or the conversation inside Openline."""
    href = safe_href(record.address)
    if href:
        return href
    chat = _INBOX_LINK.match(record.address)
    if chat:
        return _chat_link(chat.group(1), bool(for_auditor))
    if record.address.startswith("/console/"):
        return "" if for_auditor and record.address.startswith("/console/crm/") else record.address
    if record.conversation_id:
        return _chat_link(record.conversation_id, bool(for_auditor))
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


def _when(value: dt.datetime) -> str:
    """A compact UTC date and time; the exact instant is in the ``<time>``'s title."""
    utc = value.astimezone(dt.UTC)
    return format_html(
        '<time datetime="{}" title="{}">{}<span class="sub">{}</span></time>',
        utc.isoformat(),
        utc.strftime("%Y-%m-%d %H:%M:%S.%f UTC"),
        utc.strftime("%Y-%m-%d"),
        utc.strftime("%H:%M UTC"),
    )


@register.simple_tag
def record_rows(records, names=None, for_auditor=False) -> str:
    """Render the rows of the Obtained consents table.

    ``names`` maps a visitor id to the name the console shows for the client (the CRM's
    when known); records of other visitors show their pseudonym. Built in Python rather than
    with template tags: this page is the registry's hot path (50 rows per page over millions
    of records) and every value is still escaped by ``format_html``.
    """
    names = names or {}
    list_url = reverse("consent:records")
    # One reverse() for the whole page: the detail URL is the list URL plus the record id.
    detail_prefix = reverse("consent:record_detail", kwargs={"record_uuid": _SAMPLE}).removesuffix(
        f"{_SAMPLE}/"
    )
    rows = []
    for r in records:
        detail = f"{detail_prefix}{r.uuid}/"
        source_text = r.source_label or r.get_source_type_display()
        source = _link(
            source_href(r, for_auditor), source_text, external=r.source_type == "website"
        )
        address_link = address_href(r, for_auditor)
        chat = _INBOX_LINK.match(r.address)
        address_text = (
            f"Chat #{chat.group(1)}"
            if chat
            else r.address or ("Conversation" if address_link else "—")
        )
        if len(address_text) > 80:
            address_text = address_text[:79] + "…"
        address = _link(address_link, address_text, external=not address_link.startswith("/"))
        if r.ip:
            ip = format_html('<code class="clip" title="{}">{}</code>', r.ip, r.ip)
        else:
            ip = format_html('<span class="muted" title="{}">none</span>', r.ip_missing_reason)
        badge, label = _STATE_BADGE.get(r.state, ("badge-muted", r.state))
        pseudonym = r.user_display
        client = names.get(r.visitor_id) or pseudonym
        client_sub = (
            format_html('<span class="sub">{}</span>', pseudonym) if client != pseudonym else ""
        )
        rows.append(
            format_html(
                '<tr><td class="nowrap" data-label="Date"><a href="{}" title="Record {}">{}</a></td>'
                '<td data-label="Client" class="client"><a href="{}?q={}" title="All consents of this client">{}</a>{}</td>'
                '<td data-label="Source">{}<span class="sub">{}</span></td>'
                '<td data-label="Address" class="addr">{}</td><td data-label="IP">{}</td>'
                '<td data-label="Consent">{} <span class="sub">v{} · {}</span></td>'
                '<td data-label="State"><span class="badge {}">{}</span></td>'
                '<td data-label="Origin">{}<span class="sub">{}</span></td></tr>',
                detail,
                r.uuid,
                _when(r.created_at),
                list_url,
                r.visitor.public_id,
                client,
                client_sub,
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


@register.filter
def get_item(mapping, key):
    """Look a key up in a dict from a template (``changes|get_item:event.pk``)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


_EVIDENCE_LABELS = {
    "recorded_by": "Recorded by",
    "channel_consent_settings": "Open Channel consent settings",
    "requested_language": "Requested language",
    "withdraws_record": "Withdraws record",
    "consent_enabled": "Send warning",
    **SETTING_LABELS,
}


@register.filter
def evidence_fields(evidence) -> list[tuple[str, list[tuple[str, str]]]]:
    """Group a record's evidence into labelled fields: ``[(group, [(label, text), ...])]``.

    Top-level values form the first group (named ""); each nested object is a group of its
    own, deeper levels joined by "›" in the label.
    """
    top: list[tuple[str, str]] = []
    groups: list[tuple[str, list[tuple[str, str]]]] = []

    def name(key) -> str:
        text = _EVIDENCE_LABELS.get(str(key), str(key).replace("_", " "))
        return text[:1].upper() + text[1:]

    def walk(value, labels: list[str], into: list[tuple[str, str]]) -> None:
        if isinstance(value, dict) and value:
            for key in sorted(value):
                walk(value[key], [*labels, name(key)], into)
        else:
            into.append((" › ".join(labels) or "Value", show_value(value)))

    if isinstance(evidence, dict):
        for key in sorted(evidence):
            value = evidence[key]
            if isinstance(value, dict) and value:
                fields: list[tuple[str, str]] = []
                walk(value, [], fields)
                groups.append((name(key), fields))
            else:
                top.append((name(key), show_value(value)))
    elif evidence is not None:
        top.append(("Value", show_value(evidence)))
    return ([("", top)] if top else []) + groups
