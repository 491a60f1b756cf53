"""Role checks for console views.

Every console view is wrapped in ``role_required``; the decorator records the
roles on the view so a test can walk the URL configuration and prove that each
URL answers every role as declared.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

from openline.accounts.models import Role, User

ALL_ROLES = (Role.ADMINISTRATOR, Role.OPERATOR, Role.AUDITOR)


class StaffRequest(HttpRequest):
    """A request that passed ``role_required``: ``user`` is a signed-in staff ``User``."""

    user: User  # type: ignore[assignment]


# The HTTP methods a console view serves. A page only shows (READ); a form shows and posts
# (FORM, the default); an action only posts (ACTION). HEAD goes with GET.
READ = ("GET",)
FORM = ("GET", "POST")
ACTION = ("POST",)


def role_required(*roles: str, methods: tuple[str, ...] = FORM) -> Callable:
    """Allow the view to signed-in staff whose role is one of ``roles``; others get 403.

    Methods the view does not serve (``methods``, plus HEAD with GET) answer 405 with an
    ``Allow`` header, after the role check so strangers learn nothing about the view.
    """
    allowed = frozenset(roles)
    served = frozenset(methods) | ({"HEAD"} if "GET" in methods else set())

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user.is_active or user.role not in allowed:
                raise PermissionDenied("Your role does not give access to this page.")
            if request.method not in served:
                return HttpResponseNotAllowed(sorted(served))
            return view(request, *args, **kwargs)

        wrapper.allowed_roles = allowed  # type: ignore[attr-defined]
        wrapper.allowed_methods = served  # type: ignore[attr-defined]
        return wrapper

    return decorator


def has_role(user, *roles: str) -> bool:
    """Tell whether a signed-in, active user has one of ``roles``."""
    return bool(user and user.is_authenticated and user.is_active and user.role in roles)
