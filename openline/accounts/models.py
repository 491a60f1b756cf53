"""Staff accounts. Visitors and messenger clients are never staff users."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    ADMINISTRATOR = "administrator", "Administrator"
    OPERATOR = "operator", "Operator"
    AUDITOR = "auditor", "Auditor"


class User(AbstractUser):
    """A staff member of the company with exactly one role."""

    role = models.CharField(max_length=20, choices=Role.choices, default=Role.OPERATOR)
    display_name = models.CharField(max_length=150, blank=True)
    # Set when an administrator resets the password; the console and API refuse everything
    # but the change-password page until the user picks a new one.
    must_change_password = models.BooleanField(default=False)
    # The picture clients see next to this user's messages, served at an unguessable URL that
    # changes with each upload (accounts/avatars.py); blank = no picture.
    avatar_key = models.CharField(max_length=40, blank=True, editable=False)

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    @property
    def is_administrator(self) -> bool:
        return self.role == Role.ADMINISTRATOR

    @property
    def is_operator(self) -> bool:
        return self.role == Role.OPERATOR

    @property
    def is_auditor(self) -> bool:
        return self.role == Role.AUDITOR


class Avatar(models.Model):
    """A staff user's picture, re-encoded small and square; the bytes live in the database."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="avatar")
    key = models.CharField(max_length=40, unique=True)
    image = models.BinaryField()
    content_type = models.CharField(max_length=40, default="image/webp")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Picture of {self.user}"


class ApiToken(models.Model):
    """A personal API token: acts as its owner, with the owner's role, until revoked or expired.

    The secret is shown once, when the token is made; only its SHA-256 is stored, next to a
    short public ``prefix`` that names the token in lists and finds its row on each request.
    Tokens are ``ol_<prefix>_<secret>`` (see ``accounts/api_tokens.py``).
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    read_only = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} (ol_{self.prefix}_…)"

    def state(self, now: datetime | None = None) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return "expired"
        return "active"
