"""Session rules for signed-in staff: an idle timeout and a forced password change."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.views import redirect_to_login
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

LAST_SEEN = "openline_last_seen"
# Writing the session on every request costs a database write per request; a stamp at most
# once a minute costs one a minute, and ends a session at most a minute early.
REFRESH_SECONDS = 60

CONSOLE_PREFIX = "/console/"
API_PREFIX = "/api/"


def _now() -> int:
    return int(time.time())


def mark_active(request: HttpRequest) -> None:
    """Stamp the session as used now (called on sign-in)."""
    request.session[LAST_SEEN] = _now()


def session_still_active(session: SessionBase) -> bool:
    """Apply the idle rule to a signed-in session: False once idle past the timeout.

    Otherwise stamp it as used now, at most once a minute (the caller saves the session, as
    Django's session middleware does for requests). Shared by requests and operator sockets.
    """
    timeout = settings.OPENLINE_SESSION_IDLE_TIMEOUT
    if not timeout:
        return True
    now = _now()
    last = session.get(LAST_SEEN)
    if isinstance(last, int) and now - last > timeout:
        return False
    if not isinstance(last, int) or now - last >= min(REFRESH_SECONDS, timeout // 2):
        session[LAST_SEEN] = now
    return True


def _signed_in(request: HttpRequest) -> bool:
    # Looks at the session only: no user query for anonymous traffic (widget, static, health).
    return SESSION_KEY in request.session


class IdleSessionTimeoutMiddleware:
    """Sign out a session unused for longer than ``OPENLINE_SESSION_IDLE_TIMEOUT`` seconds."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        timeout = settings.OPENLINE_SESSION_IDLE_TIMEOUT
        if timeout and _signed_in(request) and not session_still_active(request.session):
            logout(request)
            return self._expired(request, timeout)
        return self.get_response(request)

    def _expired(self, request: HttpRequest, timeout: int) -> HttpResponse:
        minutes = max(1, timeout // 60)
        text = (
            f"You were signed out after {minutes} minute{'s' if minutes != 1 else ''} "
            "without activity. Sign in again."
        )
        if request.path_info.startswith(API_PREFIX):
            return JsonResponse({"detail": text}, status=401)
        if request.path_info.startswith(CONSOLE_PREFIX):
            messages.info(request, text)
            return redirect_to_login(request.get_full_path())
        # Public pages and the login page carry on as an anonymous visitor.
        return self.get_response(request)


class PasswordChangeRequiredMiddleware:
    """Send staff whose password was reset to the change-password page until they change it."""

    API_MESSAGE = (
        "Your password was reset by an administrator: change it in the console "
        "(Change password) before using the API."
    )

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith((CONSOLE_PREFIX, API_PREFIX)) and _signed_in(request):
            user = request.user
            if getattr(user, "must_change_password", False) and user.is_authenticated:
                change_url = reverse("accounts:password_change")
                if path.startswith(API_PREFIX):
                    return JsonResponse({"detail": self.API_MESSAGE}, status=403)
                if path != change_url:
                    return redirect(change_url)
        return self.get_response(request)
