"""The client sidebar of a chat: who the client is, their consent, past chats, where they are."""

from __future__ import annotations

import re

from django.urls import NoReverseMatch, reverse

from openline.accounts.models import Role
from openline.conversations import naming
from openline.conversations.consent_panel import consent_panel
from openline.conversations.models import Conversation, VisitorOrigin

PAST = 10

_BROWSERS = [
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"(?:OPR|Opera)/(\d+)")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/(\d+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+)[.\d]* (?:Mobile/\S+ )?Safari/")),
]
_SYSTEMS = [
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux")),
]


def summarise_user_agent(user_agent: str) -> str:
    """Return "Browser N on System" for a User-Agent string (or a short fallback)."""
    user_agent = user_agent or ""
    if not user_agent.strip():
        return ""
    browser = next(
        (f"{name} {m.group(1)}" for name, rx in _BROWSERS if (m := rx.search(user_agent))), ""
    )
    system = next((name for name, rx in _SYSTEMS if rx.search(user_agent)), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown browser"


def _record_url(record, user) -> str:
    # The registry's record pages are for administrators and auditors.
    if user.role not in (Role.ADMINISTRATOR, Role.AUDITOR):
        return ""
    return f"/console/obtained-consents/{record.uuid}/"


def _wording_url(record) -> str:
    try:
        return reverse("consent_public:version", kwargs={"code": record.version.public_code})
    except NoReverseMatch:  # pragma: no cover - the public pages are always installed
        return ""


def sidebar(conversation: Conversation, *, user, visible, known: naming.ClientName | None) -> dict:
    """Return everything the client sidebar shows about ``conversation``'s client."""
    visitor = conversation.visitor
    panel = consent_panel(conversation)
    past = list(
        visible.filter(visitor_id=visitor.pk)
        .exclude(pk=conversation.pk)
        .order_by("-started_at", "-id")[:PAST]
    )
    erased = bool(visitor.erased_at)
    return {
        "name": naming.label(visitor, known),
        "pseudonym": str(visitor),
        "known": None if erased else known,
        "email": "" if erased else (known.email if known and known.email else visitor.email),
        "phone": "" if erased else (known.phone if known and known.phone else visitor.phone),
        "consent": panel,
        "records": [
            {
                "record": record,
                "url": _record_url(record, user),
                "wording_url": _wording_url(record),
            }
            for record in panel.get("records") or []
        ],
        "past": past,
        "page_url": conversation.page_url,
        "browser": summarise_user_agent(visitor.user_agent),
        "user_agent": visitor.user_agent,
        "language": visitor.language,
        "channel": conversation.channel,
        "origin": VisitorOrigin(conversation.origin).label,
    }
