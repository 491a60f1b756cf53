"""Template filter that turns a stored page URL into a link only when it is http(s)."""

from __future__ import annotations

from django import template

from openline.core.pageurl import is_page_url

register = template.Library()


@register.filter
def page_href(url: object) -> str:
    """Return the URL if it is a clean http(s) page URL, else "" (the template shows text)."""
    return url if isinstance(url, str) and is_page_url(url) else ""
