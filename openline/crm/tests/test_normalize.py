"""Identity normalisation: whatever comes in, matching sees one canonical form or a clear error."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from openline.crm.normalize import normalize_email, normalize_phone, search_digits


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("+49 30 1234567", "49301234567"),
        ("(+49) 30/123-45-67", "49301234567"),
        ("030 123.45.67", "0301234567"),
        ("  +1 (555) 010-9999 ", "15550109999"),
        ("+٤٩ ٣٠ ١٢٣٤٥٦٧", "49301234567"),  # Arabic-Indic digits
    ],
)
def test_phone_numbers_match_by_digits(raw, digits):
    assert normalize_phone(raw) == digits


@pytest.mark.parametrize(
    "raw", ["", "call me", "12345", "+1 234 567 890 123 456", "1+2+3 456 789", "555-CALL-NOW"]
)
def test_implausible_phone_numbers_are_refused(raw):
    with pytest.raises(ValidationError):
        normalize_phone(raw)


def test_emails_are_lower_case_and_validated():
    assert normalize_email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    for bad in ["", "jane", "jane@", "@example.com", "jane doe@example.com"]:
        with pytest.raises(ValidationError):
            normalize_email(bad)


PHONE_LIKE = st.from_regex(
    r"\+?\d{1,3}[ \-]?\(?\d{2,4}\)?[ \-/]?\d{3,4}[ \-.]?\d{2,4}", fullmatch=True
)


def test_any_phone_input_gives_digits_or_a_validation_error():
    # Counted, not just returned from: a normaliser that refused everything would pass a
    # body that only returns on ValidationError.
    seen = {"accepted": 0, "refused": 0}

    @settings(max_examples=200, deadline=None)
    @given(st.one_of(st.text(max_size=40), PHONE_LIKE))
    def check(raw):
        try:
            digits = normalize_phone(raw)
        except ValidationError:
            seen["refused"] += 1
            return
        seen["accepted"] += 1
        assert digits.isascii() and digits.isdigit() and 6 <= len(digits) <= 15
        assert normalize_phone(digits) == digits  # idempotent

    check()
    assert seen["accepted"] >= 20 and seen["refused"] >= 20, seen


def test_formatting_never_changes_the_match():
    seen = {"accepted": 0, "refused": 0}

    @settings(max_examples=100, deadline=None)
    @given(PHONE_LIKE)
    def check(raw):
        try:
            digits = normalize_phone(raw)
        except ValidationError:
            seen["refused"] += 1
            return
        seen["accepted"] += 1
        assert normalize_phone(" ".join(digits)) == digits

    check()
    assert seen["accepted"] >= 50, seen


def test_search_digits_only_for_phone_like_queries():
    assert search_digits("30 1234") == "301234"
    assert search_digits("jane") == ""
    assert search_digits("12") == ""
