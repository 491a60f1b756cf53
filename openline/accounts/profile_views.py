"""My profile: the name and picture clients see next to a staff user's messages."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET

from openline.accounts import avatars
from openline.accounts.permissions import ALL_ROLES, StaffRequest, role_required


class ProfileForm(forms.Form):
    display_name = forms.CharField(
        max_length=150,
        required=False,
        label="Name shown to clients",
        help_text="Clients see it next to your messages. Leave empty to use your username.",
    )
    picture = forms.FileField(
        required=False,
        label="Picture",
        help_text="JPEG, PNG or WebP, at most 2 MB and 4096 × 4096 pixels. "
        "It is cropped to a square; "
        "its metadata (camera, place) is removed.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
    )


# CSRF is checked in _profile, after the size: reading the token would parse (and store) the body.
@csrf_exempt
@never_cache
@role_required(*ALL_ROLES)
def profile(request: StaffRequest) -> HttpResponse:
    """Change the signed-in user's display name and picture, or remove the picture."""
    if request.method == "POST" and declared_length(request) > avatars.MAX_REQUEST:
        return too_large(request)
    return _profile(request)


def declared_length(request: HttpRequest) -> int:
    """Return the request's Content-Length (0 when absent or unreadable)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def too_large(request: StaffRequest) -> HttpResponse:
    """Answer 413 with the form and its error, without reading the request body."""
    user = request.user
    form = ProfileForm({"display_name": user.display_name})
    form.is_valid()
    form.add_error("picture", "The picture is larger than 2 MB.")
    return _page(request, form, status=413)


@csrf_protect
def _profile(request: StaffRequest) -> HttpResponse:
    user = request.user
    if request.method == "POST" and request.POST.get("action") == "remove_picture":
        avatars.remove_avatar(user=user)
        messages.success(request, "Your picture was removed.")
        return redirect("accounts:profile")
    form = ProfileForm(
        request.POST or None, request.FILES or None, initial={"display_name": user.display_name}
    )
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data.get("picture")
        try:
            if upload:
                avatars.set_avatar(user=user, upload=upload)
        except ValidationError as exc:
            form.add_error("picture", exc)
        else:
            avatars.set_display_name(user=user, display_name=form.cleaned_data["display_name"])
            messages.success(request, "Your profile was saved.")
            return redirect("accounts:profile")
    return _page(request, form)


def _page(request: StaffRequest, form: ProfileForm, status: int = 200) -> HttpResponse:
    user = request.user
    return render(
        request,
        "accounts/profile.html",
        {
            "form": form,
            "section": "profile",
            "avatar_url": avatars.avatar_url(user),
            "initials": initials(str(user)),
        },
        status=status,
    )


def initials(name: str) -> str:
    """Return up to two initials of a name, for a picture placeholder."""
    parts = [p for p in name.replace(".", " ").replace("_", " ").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


@require_GET
def avatar(request: HttpRequest, key: str) -> HttpResponse:
    """Serve a staff picture publicly (clients see it), cached for a year: its key never changes."""
    found = avatars.avatar_image(key)
    if found is None:
        raise Http404("No such picture")
    data, content_type = found
    response = HttpResponse(data, content_type=content_type)
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    response["Content-Disposition"] = 'inline; filename="picture.webp"'
    return response
