"""Normalising and validating the identities used to match clients."""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

PHONE_CHARS = re.compile(r"^[0-9\s().\-/+]+$")


def _ascii_digits(value: str) -> str:
    # Clients type numbers with their own digits (e.g. Arabic-Indic); match them as 0-9.
    return "".join(str(unicodedata.digit(c)) if c.isdecimal() else c for c in value)


def normalize_email(value: str) -> str:
    """Return the email in lower case without surrounding spaces; raise if invalid."""
    email = (value or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError("Enter a valid email address, e.g. jane@example.com.") from None
    return email.lower()


def normalize_phone(value: str) -> str:
    """Return the phone number's digits; raise if it is not a plausible phone number."""
    phone = _ascii_digits((value or "").strip())
    if not PHONE_CHARS.match(phone) or phone.count("+") > 1:
        raise ValidationError(
            "Enter a phone number using digits, spaces and + ( ) - only, e.g. +49 30 1234567."
        )
    digits = re.sub(r"[^0-9]", "", phone)
    # E.164 numbers have at most 15 digits; fewer than 6 cannot reach anyone.
    if not 6 <= len(digits) <= 15:
        raise ValidationError("A phone number has 6 to 15 digits.")
    return digits


def messenger_identity(origin: str, external_id: str) -> str:
    """Return the normalised messenger identity, e.g. "telegram:12345"."""
    return f"{origin}:{external_id.strip()}"


def search_digits(query: str) -> str:
    """Return the digits of a search that looks like a phone number, else ""."""
    query = _ascii_digits(query)
    if PHONE_CHARS.match(query.strip() or "x"):
        digits = re.sub(r"[^0-9]", "", query)
        if len(digits) >= 3:
            return digits
    return ""
