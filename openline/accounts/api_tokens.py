"""Personal API tokens: make, check and revoke them.

A token reads ``ol_<prefix>_<secret>``. The prefix (public, shown in lists) finds the row;
the secret is compared with the stored SHA-256 in constant time. Secrets are random
(256 bits), so a plain hash is enough: nothing to guess, nothing a slow hash would protect.
``last_used_at`` is written at most once a minute per token, not on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, InternalError, OperationalError, transaction
from django.utils import timezone

from openline.accounts.models import ApiToken, User

TOKEN_START = "ol_"
PREFIX_CHARS = 8
LAST_USED_EVERY = timedelta(minutes=1)
EXPIRY_CHOICES = {"never": None, "30": 30, "90": 90, "365": 365}


class TokenRefused(Exception):
    """A presented token does not authenticate; ``code`` says why (machine-readable)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # the whole ``ol_...`` string; shown once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(
    user: User, name: str, *, read_only: bool = False, days: int | None = None
) -> NewToken:
    """Make a token for ``user``; the returned secret is the only copy there will be."""
    expires_at = timezone.now() + timedelta(days=days) if days else None
    for _ in range(5):
        prefix = secrets.token_hex(PREFIX_CHARS // 2)
        secret = secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name.strip()[:100] or "API token",
                    prefix=prefix,
                    secret_hash=_hash(secret),
                    read_only=read_only,
                    expires_at=expires_at,
                )
        except IntegrityError:  # pragma: no cover - a 32-bit prefix collision
            continue
        return NewToken(token=token, secret=f"{TOKEN_START}{prefix}_{secret}")
    raise RuntimeError("Could not pick a free token prefix.")  # pragma: no cover


def revoke_token(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def authenticate_token(raw: str) -> ApiToken:
    """Return the active token ``raw`` names (owner loaded) or raise ``TokenRefused``."""
    raw = raw.strip()
    prefix, _, secret = raw.removeprefix(TOKEN_START).partition("_")
    if not raw.startswith(TOKEN_START) or len(prefix) != PREFIX_CHARS or not secret:
        raise TokenRefused("invalid_token", "The API token is not valid.")
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    # Compare even when no row matched, so timing does not tell whether a prefix exists.
    expected = token.secret_hash if token else _hash("-")
    if not hmac.compare_digest(expected, _hash(secret)) or token is None:
        raise TokenRefused("invalid_token", "The API token is not valid.")
    now = timezone.now()
    state = token.state(now)
    if state == "revoked":
        raise TokenRefused("revoked_token", "The API token was revoked.")
    if state == "expired":
        raise TokenRefused("expired_token", "The API token has expired.")
    if not token.user.is_active:
        raise TokenRefused("inactive_user", "The account that owns this API token is deactivated.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        # One write a minute at most; a conditional update so parallel requests write once.
        try:
            with transaction.atomic():
                ApiToken.objects.filter(pk=token.pk, last_used_at=token.last_used_at).update(
                    last_used_at=now
                )
        except (InternalError, OperationalError):
            # A read-only (or full) database still serves reads: the last use waits.
            pass
        token.last_used_at = now
    return token
