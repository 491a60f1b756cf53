"""Canned replies: the only write path, and who may see or change which.

Shared replies (no owner) are managed by administrators and offered to everyone who answers
chats; personal ones belong to one operator (or administrator) and are offered to them only.
A shortcut is unique among the shared replies and among each person's own.
"""

from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from openline.accounts.models import Role
from openline.conversations.models import CannedReply

MAX_TITLE = 120
MAX_SHORTCUT = 40
MAX_TEXT = 4000
SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def offered_to(user):
    """Return the replies ``user`` may insert: their own and the shared ones."""
    return CannedReply.objects.filter(Q(owner=user) | Q(owner__isnull=True)).order_by(
        "shortcut", "id"
    )


def can_manage(user, reply: CannedReply) -> bool:
    """Tell whether ``user`` may edit or delete ``reply``.

    Administrators manage the shared replies (and may clean up anyone's); everybody else
    only their own.
    """
    if user.role == Role.ADMINISTRATOR:
        return True
    return reply.owner_id is not None and reply.owner_id == user.pk


def _clean(*, title, shortcut, text, owner, instance: CannedReply | None) -> tuple[str, str, str]:
    errors: dict[str, str] = {}
    title = (title or "").strip()
    shortcut = (shortcut or "").strip().lstrip("/").lower()
    text = (text or "").strip()
    if not title:
        errors["title"] = "Give the reply a title."
    elif len(title) > MAX_TITLE:
        errors["title"] = f"A title can be at most {MAX_TITLE} characters."
    if not shortcut:
        errors["shortcut"] = "Choose a shortcut, typed after / in the reply box."
    elif len(shortcut) > MAX_SHORTCUT or not SHORTCUT.match(shortcut):
        errors["shortcut"] = (
            f"Use up to {MAX_SHORTCUT} lowercase letters, digits, - or _ (no spaces)."
        )
    if not text:
        errors["text"] = "Write the reply's text."
    elif len(text) > MAX_TEXT:
        errors["text"] = f"A reply can be at most {MAX_TEXT} characters."
    if "shortcut" not in errors:
        same = CannedReply.objects.filter(shortcut=shortcut, owner=owner)
        if instance is not None:
            same = same.exclude(pk=instance.pk)
        if same.exists():
            errors["shortcut"] = (
                "A shared reply already uses this shortcut."
                if owner is None
                else "You already have a reply with this shortcut."
            )
    if errors:
        raise ValidationError(errors)
    return title, shortcut, text


def _duplicate() -> ValidationError:
    return ValidationError({"shortcut": "This shortcut was just taken; choose another."})


def create_canned_reply(*, actor, title, shortcut, text, shared: bool = False) -> CannedReply:
    """Create a personal reply for ``actor``, or a shared one (administrators only)."""
    if actor.role not in (Role.ADMINISTRATOR, Role.OPERATOR):
        raise PermissionDenied("Only people who answer chats keep canned replies.")
    if shared and actor.role != Role.ADMINISTRATOR:
        raise PermissionDenied("Only administrators manage shared replies.")
    owner = None if shared else actor
    title, shortcut, text = _clean(
        title=title, shortcut=shortcut, text=text, owner=owner, instance=None
    )
    try:
        with transaction.atomic():
            return CannedReply.objects.create(
                owner=owner, title=title, shortcut=shortcut, text=text
            )
    except IntegrityError:
        raise _duplicate() from None


def update_canned_reply(*, actor, reply: CannedReply, title, shortcut, text) -> CannedReply:
    """Change a reply's title, shortcut or text (its scope stays)."""
    if not can_manage(actor, reply):
        raise PermissionDenied("You cannot change this reply.")
    owner = reply.owner
    reply.title, reply.shortcut, reply.text = _clean(
        title=title, shortcut=shortcut, text=text, owner=owner, instance=reply
    )
    try:
        with transaction.atomic():
            reply.save(update_fields=["title", "shortcut", "text", "updated_at"])
    except IntegrityError:
        raise _duplicate() from None
    return reply


def delete_canned_reply(*, actor, reply: CannedReply) -> None:
    """Delete a reply."""
    if not can_manage(actor, reply):
        raise PermissionDenied("You cannot delete this reply.")
    reply.delete()


def as_json(reply: CannedReply) -> dict:
    """Serialise a reply for the reply box's suggestion list."""
    return {
        "id": reply.id,
        "title": reply.title,
        "shortcut": reply.shortcut,
        "text": reply.text,
        "shared": reply.owner_id is None,
    }
