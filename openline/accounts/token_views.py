"""API tokens in the console: every staff user lists, creates and revokes their own tokens.

A new token's secret is shown once, on the page answering the POST that made it; it is never
stored (only its hash) and never put in the session or a redirect.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from openline.accounts.api_tokens import EXPIRY_CHOICES, NewToken, create_token, revoke_token
from openline.accounts.models import ApiToken
from openline.accounts.permissions import ALL_ROLES, StaffRequest, role_required

MAX_ACTIVE_TOKENS = 50


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Name",
        help_text="What the token is for, e.g. “Website backend” or “Data warehouse”.",
    )
    read_only = forms.BooleanField(
        required=False,
        label="Read-only",
        help_text="The token may only read (GET); it cannot create, change or delete anything.",
    )
    expiry = forms.ChoiceField(
        label="Expires",
        choices=[
            ("90", "In 90 days"),
            ("30", "In 30 days"),
            ("365", "In 365 days"),
            ("never", "Never"),
        ],
        initial="90",
    )


def _own(request: StaffRequest) -> ApiToken | None:
    """The signed-in user's token named by ``token`` (query or form); None when there is none."""
    raw = request.POST.get("token") if request.method == "POST" else request.GET.get("token")
    if not raw or not raw.isdigit() or len(raw) > 18:
        return None
    return ApiToken.objects.filter(pk=int(raw), user=request.user).first()


@never_cache
@role_required(*ALL_ROLES)
def token_list(request: StaffRequest) -> HttpResponse:
    """List the signed-in user's tokens; POST makes a new one and shows its secret once."""
    form = TokenForm(request.POST or None)
    created: NewToken | None = None
    status = 200
    if request.method == "POST":
        active = [t for t in ApiToken.objects.filter(user=request.user) if t.state() == "active"]
        if len(active) >= MAX_ACTIVE_TOKENS:
            form.add_error(None, f"You have {MAX_ACTIVE_TOKENS} active tokens: revoke one first.")
        if form.is_valid():
            created = create_token(
                request.user,
                form.cleaned_data["name"],
                read_only=form.cleaned_data["read_only"],
                days=EXPIRY_CHOICES[form.cleaned_data["expiry"]],
            )
            form = TokenForm()
        else:
            status = 200  # the form again, with its errors
    tokens = list(ApiToken.objects.filter(user=request.user))
    now = timezone.now()
    return render(
        request,
        "accounts/tokens.html",
        {
            "section": "tokens",
            "form": form,
            "created": created,
            "rows": [(token, token.state(now)) for token in tokens],
        },
        status=status,
    )


@never_cache
@role_required(*ALL_ROLES)
def token_revoke(request: StaffRequest) -> HttpResponse:
    """Ask to confirm (GET), then revoke (POST) one of the signed-in user's tokens.

    The token is named by ``?token=<id>`` / a ``token`` field; someone else's token, or none,
    leads back to the list: a user can only ever see and revoke their own.
    """
    token = _own(request)
    if token is None:
        messages.error(request, "There is no such token among yours.")
        return redirect("accounts:tokens")
    if request.method == "POST":
        revoke_token(token)
        messages.success(request, f"The token “{token.name}” was revoked.")
        return redirect("accounts:tokens")
    return render(request, "accounts/tokens_revoke.html", {"section": "tokens", "token": token})
