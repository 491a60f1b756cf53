"""The Canned replies page (list, create, edit, delete) and the reply box's JSON list."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render

from openline.accounts.models import Role
from openline.accounts.permissions import FORM, READ, StaffRequest, role_required
from openline.conversations import canned
from openline.conversations.models import CannedReply

STAFF = (Role.ADMINISTRATOR, Role.OPERATOR)


@role_required(*STAFF, methods=READ)
def canned_list(request: StaffRequest) -> HttpResponse:
    """List the shared replies and the user's own, with who may change which."""
    user = request.user
    replies = list(canned.offered_to(user).select_related("owner"))
    return render(
        request,
        "conversations/canned_list.html",
        {
            "section": "canned",
            "shared": [(r, canned.can_manage(user, r)) for r in replies if r.owner_id is None],
            "mine": [r for r in replies if r.owner_id == user.pk],
            "is_admin": user.role == Role.ADMINISTRATOR,
        },
    )


@role_required(*STAFF, methods=READ)
def canned_json(request: StaffRequest) -> JsonResponse:
    """Return the replies the reply box offers: the user's own first, then the shared ones."""
    replies = sorted(
        canned.offered_to(request.user), key=lambda r: (r.owner_id is None, r.shortcut)
    )
    response = JsonResponse({"replies": [canned.as_json(r) for r in replies]})
    response["Cache-Control"] = "private, no-store"
    return response


def _form_values(request: StaffRequest, reply: CannedReply | None) -> dict:
    if request.method == "POST":
        return {
            "title": request.POST.get("title", ""),
            "shortcut": request.POST.get("shortcut", ""),
            "text": request.POST.get("text", ""),
            "scope": request.POST.get("scope", "mine"),
        }
    if reply is None:
        return {"title": "", "shortcut": "", "text": "", "scope": request.GET.get("scope", "mine")}
    return {
        "title": reply.title,
        "shortcut": reply.shortcut,
        "text": reply.text,
        "scope": "shared" if reply.owner_id is None else "mine",
    }


def _render_form(request, *, reply, values, errors, status=200) -> HttpResponse:
    return render(
        request,
        "conversations/canned_form.html",
        {
            "section": "canned",
            "reply": reply,
            "values": values,
            "errors": errors,
            "can_share": reply is None and request.user.role == Role.ADMINISTRATOR,
        },
        status=status,
    )


@role_required(*STAFF, methods=FORM)
def canned_create(request: StaffRequest) -> HttpResponse:
    """Create a canned reply: personal, or shared when an administrator chooses so."""
    values = _form_values(request, None)
    errors: dict = {}
    if request.method == "POST":
        try:
            reply = canned.create_canned_reply(
                actor=request.user,
                title=values["title"],
                shortcut=values["shortcut"],
                text=values["text"],
                shared=values["scope"] == "shared",
            )
        except ValidationError as exc:
            errors = exc.message_dict
        else:
            messages.success(request, f"Canned reply /{reply.shortcut} saved.")
            return redirect("conversations:canned_replies")
    return _render_form(request, reply=None, values=values, errors=errors)


def _manageable(request: StaffRequest, pk: int) -> CannedReply:
    reply = get_object_or_404(canned.offered_to(request.user), pk=pk)
    if not canned.can_manage(request.user, reply):
        raise PermissionDenied("Only administrators change shared replies.")
    return reply


def _find(request: StaffRequest, pk: int) -> CannedReply:
    # Administrators may clean up anyone's replies; others only reach the ones offered to them.
    if request.user.role == Role.ADMINISTRATOR:
        return get_object_or_404(CannedReply, pk=pk)
    return _manageable(request, pk)


@role_required(*STAFF, methods=FORM)
def canned_edit(request: StaffRequest, pk: int) -> HttpResponse:
    """Change a canned reply the user may manage."""
    reply = _find(request, pk)
    values = _form_values(request, reply)
    errors: dict = {}
    if request.method == "POST":
        try:
            canned.update_canned_reply(
                actor=request.user,
                reply=reply,
                title=values["title"],
                shortcut=values["shortcut"],
                text=values["text"],
            )
        except ValidationError as exc:
            errors = exc.message_dict
        else:
            messages.success(request, f"Canned reply /{reply.shortcut} saved.")
            return redirect("conversations:canned_replies")
    return _render_form(request, reply=reply, values=values, errors=errors)


@role_required(*STAFF, methods=FORM)
def canned_delete(request: StaffRequest, pk: int) -> HttpResponse:
    """Ask, then delete a canned reply the user may manage."""
    reply = _find(request, pk)
    if request.method == "POST":
        canned.delete_canned_reply(actor=request.user, reply=reply)
        messages.success(request, f"Canned reply /{reply.shortcut} deleted.")
        return redirect("conversations:canned_replies")
    return render(
        request, "conversations/canned_delete.html", {"section": "canned", "reply": reply}
    )
