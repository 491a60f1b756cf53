"""Working hours of an Open Channel: parsing, validation, and whether it is open now.

Hours are wall-clock ranges in the channel's IANA time zone, seven lists (Monday first) of
``["HH:MM", "HH:MM"]``. "24:00" ends a day, so a night shift 22:00–02:00 is written as
22:00–24:00 on one day and 00:00–02:00 on the next; the two join into one open period.
Every comparison is made in UTC, so the hours stay right across daylight-saving changes.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError
from django.utils import timezone

from openline.openchannels.models import DEFAULT_OFFLINE_MESSAGE

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_RANGES_PER_DAY = 6
LOOKAHEAD_DAYS = 7
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–—]\s*(\d{1,2}):(\d{2})\s*$")


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone zoneinfo knows; raise ValidationError."""
    name = (name or "").strip()
    if not name or name not in _zone_names():
        raise ValidationError(f"“{name}” is not a time zone; write one like Europe/Berlin.")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"“{name}” is not a time zone; write one like Europe/Berlin."
        ) from None
    return name


_ZONES: set[str] | None = None


def _zone_names() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = set(available_timezones())
    return _ZONES


def timezone_choices() -> list[str]:
    """Return the IANA time zones, sorted, for a datalist."""
    return sorted(z for z in _zone_names() if "/" in z or z == "UTC")


def _minutes(hours: str, minutes: str, *, end: bool) -> int:
    h, m = int(hours), int(minutes)
    if m > 59 or h > 24 or (h == 24 and (m or not end)):
        raise ValueError
    return h * 60 + m


def _fmt(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_day(text: str) -> list[list[str]]:
    """Parse "09:00-12:00, 13:00-18:00" into sorted ranges; raise ValidationError."""
    ranges: list[tuple[int, int]] = []
    for part in re.split(r"[,;\n]", text or ""):
        if not part.strip():
            continue
        match = _RANGE.match(part)
        try:
            if not match:
                raise ValueError
            start = _minutes(match[1], match[2], end=False)
            stop = _minutes(match[3], match[4], end=True)
        except ValueError:
            raise ValidationError(
                f"“{part.strip()}”: write a range like 09:00-18:00 (24-hour clock)."
            ) from None
        if stop <= start:
            raise ValidationError(
                f"“{part.strip()}” ends before it starts. For hours past midnight, end at "
                "24:00 and continue the next day from 00:00."
            )
        ranges.append((start, stop))
    ranges.sort()
    for (_, prev_stop), (start, _) in zip(ranges, ranges[1:], strict=False):
        if start < prev_stop:
            raise ValidationError("These ranges overlap; join them into one.")
    if len(ranges) > MAX_RANGES_PER_DAY:
        raise ValidationError(f"At most {MAX_RANGES_PER_DAY} ranges a day.")
    return [[_fmt(a), _fmt(b)] for a, b in ranges]


def format_day(ranges: list) -> str:
    """Write one day's ranges back as text for the form."""
    return ", ".join(f"{a}-{b}" for a, b in ranges)


def clean_week(week) -> list[list[list[str]]]:
    """Validate stored hours (seven lists of ranges); raise ValidationError."""
    if not isinstance(week, list) or len(week) != 7:
        raise ValidationError("Working hours need seven days.")
    return [parse_day(format_day(day)) for day in week]


def _periods(week: list, zone: ZoneInfo, first: date, days: int) -> list[tuple[datetime, datetime]]:
    """Return the open periods (UTC) of ``days`` local days from ``first``, joined when touching."""
    periods: list[tuple[datetime, datetime]] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        for start, stop in week[day.weekday()]:
            begin = _local(day, start, zone)
            end = _local(day, stop, zone)
            if periods and begin <= periods[-1][1]:
                periods[-1] = (periods[-1][0], max(end, periods[-1][1]))
            elif end > begin:
                periods.append((begin, end))
    return periods


def _local(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    """Return the UTC instant of wall-clock ``hhmm`` on ``day`` ("24:00" = next midnight).

    A time skipped by a daylight-saving jump (02:30 on the spring-forward night) maps to the
    moment after the jump, and a repeated one to its first occurrence.
    """
    hours, minutes = (int(x) for x in hhmm.split(":"))
    if hours == 24:
        day, hours = day + timedelta(days=1), 0
    wall = datetime.combine(day, time(hours, minutes), tzinfo=zone)
    return wall.astimezone(UTC)


def hours_state(channel, now: datetime | None = None) -> dict:
    """Return whether the channel is open now and when it opens next (spec: the "hours" dict)."""
    # Blank or the unchanged default: "" lets the widget show its own wording in the
    # client's language; a message the administrator wrote is shown as written.
    offline = (channel.offline_message or "").strip()
    if offline == DEFAULT_OFFLINE_MESSAGE:
        offline = ""
    if not channel.hours_enabled:
        return {"enabled": False, "open": True, "offline_message": offline, "next_open": None}
    try:
        zone = ZoneInfo(channel.hours_timezone)
        week = clean_week(channel.working_hours)
    except (ZoneInfoNotFoundError, ValueError, ValidationError):
        # Bad stored settings must not hide the chat: treat as always open.
        return {"enabled": False, "open": True, "offline_message": offline, "next_open": None}
    now = (now or timezone.now()).astimezone(UTC)
    today = now.astimezone(zone).date()
    # From yesterday (a night range still running) to a week ahead.
    periods = _periods(week, zone, today - timedelta(days=1), LOOKAHEAD_DAYS + 2)
    is_open = any(begin <= now < end for begin, end in periods)
    next_open = None
    if not is_open:
        limit = now + timedelta(days=LOOKAHEAD_DAYS)
        upcoming = [begin for begin, _ in periods if now < begin <= limit]
        if upcoming:
            next_open = min(upcoming).astimezone(zone).isoformat()
    return {"enabled": True, "open": is_open, "offline_message": offline, "next_open": next_open}
