"""Passwords in the console: staff change their own, administrators reset another user's."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache

from openline.accounts import services
from openline.accounts.forms import OwnPasswordChangeForm
from openline.accounts.models import Role, User
from openline.accounts.permissions import ALL_ROLES, FORM, StaffRequest, role_required
from openline.core.ip import request_client_ip


@never_cache
@role_required(*ALL_ROLES, methods=FORM)
def password_change(request: StaffRequest) -> HttpResponse:
    """Change the signed-in user's own password; other sessions of theirs end."""
    form = OwnPasswordChangeForm(request.user, request.POST or None, ip=request_client_ip(request))
    if request.method == "POST" and form.is_valid():
        user = services.change_password(
            user=request.user, new_password=form.cleaned_data["new_password1"]
        )
        # Keeps this session; every other session fails Django's hash check and ends.
        update_session_auth_hash(request, user)
        messages.success(request, "Your password was changed. Other sessions were signed out.")
        return redirect("core:home")
    return render(
        request,
        "accounts/password_change.html",
        {"form": form, "section": "password", "forced": request.user.must_change_password},
        status=429 if form.throttled else 200,
    )


@never_cache
@role_required(Role.ADMINISTRATOR, methods=FORM)
def user_reset_password(request: StaffRequest, pk: int) -> HttpResponse:
    """Confirm, then give a user a temporary password shown once on this page."""
    subject = get_object_or_404(User, pk=pk)
    context = {"subject": subject, "section": "users", "own": subject.pk == request.user.pk}
    if request.method == "POST" and not context["own"]:
        temporary = services.reset_password(actor=request.user, user=subject)
        # Rendered straight into this response (never stored in the session or messages).
        context["temporary_password"] = temporary
    return render(request, "accounts/password_reset.html", context)
