"""Staff accounts. Visitors and messenger clients are never staff users."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


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
