"""The only write path for staff accounts."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from openline.accounts.models import Role, User


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
