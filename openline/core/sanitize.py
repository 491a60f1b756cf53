"""Turn consent texts written by administrators into safe HTML."""

from __future__ import annotations

import hashlib

import nh3
from django.utils.html import linebreaks, urlize

ALLOWED_TAGS = {
    "p",
    "br",
    "ul",
    "ol",
    "li",
    "em",
    "strong",
    "b",
    "i",
    "u",
    "a",
    "h3",
    "h4",
    "blockquote",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}


def sanitize_html(text: str) -> str:
    """Reduce administrator HTML to a safe allow-list; links get rel=noopener noreferrer."""
    return nh3.clean(
        text,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


def plain_text_to_html(text: str) -> str:
    """Show plain text as escaped paragraphs with line breaks and clickable links."""
    # urlize escapes everything that is not a link itself (autoescape=True); linebreaks then
    # wraps the already-escaped text in paragraphs without escaping it twice.
    html = linebreaks(urlize(text.strip(), nofollow=False, autoescape=True), autoescape=False)
    # urlize adds rel="nofollow" only when asked; links still need noopener.
    return sanitize_html(html)


def render_agreement_text(text: str, *, allow_html: bool) -> str:
    """Return the exact HTML a client is shown for a consent text."""
    return sanitize_html(text) if allow_html else plain_text_to_html(text)


def sha256_hex(value: str) -> str:
    """Return the SHA-256 of a text, as 64 hex digits."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
