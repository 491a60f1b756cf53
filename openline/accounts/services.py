"""The only write path for staff accounts."""

from __future__ import annotations

import logging
import secrets

from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from openline.accounts.models import Role, User

logger = logging.getLogger(__name__)


@transaction.atomic
def create_staff_user(
    *,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    email: str = "",
    validate: bool = True,
) -> User:
    """Create a staff user with a hashed password and one role."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}")
    user = User(username=username, role=role, display_name=display_name, email=email)
    if validate:
        validate_password(password, user)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user


@transaction.atomic
def update_staff_user(
    *, user: User, role: str, display_name: str, email: str, is_active: bool
) -> User:
    """Change a staff user's role, name, email or active flag."""
    user.role = role
    user.display_name = display_name
    user.email = email
    user.is_active = is_active
    user.full_clean(exclude=["password"])
    user.save(update_fields=["role", "display_name", "email", "is_active"])
    return user


# Temporary passwords: no look-alike characters, read out or typed by hand once.
_TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def _temporary_password() -> str:
    groups = ("".join(secrets.choice(_TEMPORARY_ALPHABET) for _ in range(4)) for _ in range(4))
    return "-".join(groups)


@transaction.atomic
def change_password(*, user: User, new_password: str) -> User:
    """Set a user's own new password and lift a forced change.

    Every other session of the user ends at its next request (Django checks the password
    hash stored in each session); the caller keeps its own with ``update_session_auth_hash``.
    """
    user.set_password(new_password)
    user.must_change_password = False
    user.save(update_fields=["password", "must_change_password"])
    return user


@transaction.atomic
def reset_password(*, actor: User, user: User) -> str:
    """Give ``user`` a temporary password that must be changed at next sign-in; return it."""
    if not actor.is_administrator:
        raise PermissionError("Only administrators reset other users' passwords.")
    if actor.pk == user.pk:
        raise ValueError("Use Change password for your own account.")
    temporary = _temporary_password()
    validate_password(temporary, user)
    user.set_password(temporary)
    user.must_change_password = True
    user.save(update_fields=["password", "must_change_password"])
    logger.info("administrator %s reset the password of user %s", actor.pk, user.pk)
    return temporary
