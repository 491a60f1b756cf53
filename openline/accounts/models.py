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
