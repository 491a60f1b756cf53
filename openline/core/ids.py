"""Identifiers that are shown to people or put in public URLs."""

from __future__ import annotations

import secrets
import uuid


def public_code(nbytes: int = 9) -> str:
    """Return an unguessable URL-safe code (72 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def new_uuid() -> uuid.UUID:
    """Return a random UUID for records whose id is shown to people."""
    return uuid.uuid4()
