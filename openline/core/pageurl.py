"""The one check for page URLs a client reports (the page a chat or a consent came from)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_PAGE_URL = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_page_url(value: object) -> str:
    """Return the value as an http(s) page URL capped at MAX_PAGE_URL characters, else "".

    Every path that stores a client's page URL (the HTTP start endpoint, websocket frames,
    withdrawals, the API) goes through here, so nothing else (``javascript:``, ``data:``,
    control characters, text that cannot be stored as UTF-8) reaches the database or a link.
    """
    if not isinstance(value, str):
        return ""
    url = value.strip()[:MAX_PAGE_URL]
    if not url or _CONTROL.search(url):
        return ""
    try:
        url.encode("utf-8")
        parts = urlsplit(url)
        host = parts.hostname
    except (UnicodeEncodeError, ValueError):
        return ""
    if parts.scheme.lower() not in ("http", "https") or not host:
        return ""
    return url


def is_page_url(value: object) -> bool:
    """Tell whether the value is an http(s) URL that ``clean_page_url`` keeps unchanged."""
    return bool(value) and clean_page_url(value) == value
