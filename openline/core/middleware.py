"""Security headers for every console and public page."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)

# Pages and API answers here carry personal data (names, IPs, chats, consent records, exports):
# no browser or shared cache may keep a copy.
PERSONAL_DATA_PREFIXES = ("/console/", "/api/")


def carries_personal_data(path: str) -> bool:
    """Tell whether responses for ``path`` may hold personal data (console, API, receipts)."""
    return path.startswith(PERSONAL_DATA_PREFIXES) or path.rstrip("/").endswith("/receipt")


class SecurityHeadersMiddleware:
    """Add a strict Content-Security-Policy unless a view set its own; no-store personal data."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = DEFAULT_CSP
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if carries_personal_data(request.path):
            # Added to whatever a view set, so no view can forget it.
            patch_cache_control(response, no_store=True, private=True)
        return response
