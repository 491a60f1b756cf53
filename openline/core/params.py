"""Strict parsing of numbers, ids and dates that come from query strings and cursors.

``int()`` accepts "²", "٣", " 7 ", "1_000" and 4,000-digit numbers, and ``str.isdigit()``
is True for "²" although ``int("²")`` raises: each of those reached the database or a
``ValueError`` and answered 500. Every query parameter that becomes a number goes through
``parse_int``/``parse_id`` here instead: ASCII digits only, within PostgreSQL's bigint.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from typing import Annotated

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from pydantic import BeforeValidator, Field

MAX_ID = 2**63 - 1  # PostgreSQL bigint; no row id, count or cursor can be larger
_DIGITS = re.compile(r"[0-9]{1,19}")  # 19 ASCII digits hold every bigint


class BadParam(BadRequest, ValueError):
    """A query parameter that is not what it must be; views answer 400 with its message."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def is_int(raw: object, *, minimum: int = 0, maximum: int = MAX_ID) -> bool:
    """Tell whether ``raw`` is a string of ASCII digits within [minimum, maximum]."""
    if not isinstance(raw, str) or not _DIGITS.fullmatch(raw):
        return False
    return minimum <= int(raw) <= maximum


def parse_int(raw: str | None, *, name: str, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """Return the number in ``raw`` (None when empty); raise BadParam when it is not one."""
    if raw is None or raw == "":
        return None
    if not is_int(raw, minimum=minimum, maximum=maximum):
        raise BadParam(name, f"enter a whole number from {minimum} to {maximum}.")
    return int(raw)


def parse_id(raw: str | None, *, name: str) -> int | None:
    """Return a row id from ``raw`` (None when empty); raise BadParam unless 1..2**63-1."""
    return parse_int(raw, name=name, minimum=1)


def day_after(day: dt.date) -> dt.date | None:
    """Return the next day, or None after the last representable day (9999-12-31)."""
    if day >= dt.date.max:
        return None
    return day + dt.timedelta(days=1)


def strict_params(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer 400 with the parameter's name and what is wrong when the view raises BadParam."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except BadParam as exc:
            return render(
                request,
                "core/bad_request.html",
                {"field": exc.name, "message": exc.message},
                status=400,
            )

    return wrapper


def _ascii_digits(value: object) -> object:
    # Query strings arrive as text; pydantic alone would take "+1", " 1", "1_0" and "٣".
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("enter a whole number written with the digits 0-9")
    return value


# API query parameters (django-ninja/pydantic) that are numbers: same rules as parse_int.
AsciiDigits = BeforeValidator(_ascii_digits)
QueryInt = Annotated[int, AsciiDigits, Field(ge=0, le=MAX_ID)]
QueryId = Annotated[int, AsciiDigits, Field(ge=1, le=MAX_ID)]
