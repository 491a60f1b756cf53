"""Who is calling the API: a personal token (``Authorization: Bearer ol_...``) or the console.

- A token acts as its owner with the owner's role; endpoints keep checking role and channel
  through ``request.user``, exactly as for the console. Read-only tokens may only read
  (GET, HEAD, OPTIONS); anything else is 403 ``read_only_token``. A bad, revoked or expired
  token, or one whose owner is deactivated, is 401 with a code saying which; a presented
  token never falls back to the session.
- The console's own calls use the session cookie, with Django's CSRF check on unsafe
  methods. Token requests need no CSRF token: no browser sends them on its own.
Both are rate limited (``api.ratelimit``): per token, or per user for sessions.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from openline.accounts.api_tokens import TokenRefused, authenticate_token
from openline.api import ratelimit
from openline.core.api_errors import ApiRefusal

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
PASSWORD_RESET = (
    "Your password was reset by an administrator: change it in the console "
    "(Change password) before using the API."
)


def _limit(request: HttpRequest, bucket: str) -> None:
    wait = ratelimit.hit(bucket)
    if wait is not None:
        raise ApiRefusal(
            429,
            "rate_limited",
            f"Too many requests. Try again in {wait} second{'s' if wait != 1 else ''}.",
            headers={"Retry-After": str(wait)},
        )


class TokenAuth(HttpBearer):
    """``Authorization: Bearer ol_<prefix>_<secret>``."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        try:
            found = authenticate_token(token)
        except TokenRefused as refused:
            raise ApiRefusal(
                401, refused.code, refused.message, headers={"WWW-Authenticate": "Bearer"}
            ) from None
        user = found.user
        if user.must_change_password:
            raise ApiRefusal(403, "password_change_required", PASSWORD_RESET)
        _limit(request, f"token:{found.pk}")
        if found.read_only and request.method not in SAFE_METHODS:
            raise ApiRefusal(
                403, "read_only_token", "This API token is read-only: it may only read."
            )
        request.user = user
        request.api_token = found  # type: ignore[attr-defined]
        return user


class ConsoleSessionAuth(SessionAuth):
    """The console's session cookie, CSRF-checked on unsafe methods (by ``SessionAuth``)."""

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = request.user
        if not user.is_authenticated:
            return None
        _limit(request, f"user:{user.pk}")
        return user


token_auth = TokenAuth()
session_auth = ConsoleSessionAuth()
