"""Working hours: parsing and validation, and whether a channel is open, across DST."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from openline.openchannels.hours import hours_state, parse_day, validate_timezone

WEEKDAYS_9_TO_5 = [[["09:00", "17:00"]]] * 5 + [[], []]


def channel(week=WEEKDAYS_9_TO_5, tz="Europe/Berlin", enabled=True, offline="Back soon."):
    return SimpleNamespace(
        hours_enabled=enabled, hours_timezone=tz, working_hours=week, offline_message=offline
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_parse_day_sorts_and_normalises():
    assert parse_day("13:00-18:00, 9:00 – 12:30") == [["09:00", "12:30"], ["13:00", "18:00"]]
    assert parse_day("") == []
    assert parse_day("22:00-24:00") == [["22:00", "24:00"]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("18:00-09:00", "ends before it starts"),
        ("09:00-09:00", "ends before it starts"),
        ("09:00-12:00, 11:00-14:00", "overlap"),
        ("9-17", "write a range like"),
        ("25:00-26:00", "write a range like"),
        ("09:60-10:00", "write a range like"),
        ("24:00-24:30", "write a range like"),
    ],
)
def test_parse_day_refuses_bad_ranges(text, message):
    with pytest.raises(ValidationError) as exc:
        parse_day(text)
    assert message in exc.value.messages[0]


def test_timezone_must_be_iana():
    assert validate_timezone("America/New_York") == "America/New_York"
    for bad in ("Mars/Olympus", "", "../../etc/passwd", "CET-1"):
        with pytest.raises(ValidationError):
            validate_timezone(bad)


def test_disabled_hours_are_always_open():
    state = hours_state(channel(enabled=False), now=at("2026-11-29T03:00:00+00:00"))
    assert state == {
        "enabled": False,
        "open": True,
        "offline_message": "Back soon.",
        "next_open": None,
    }


def test_open_and_closed_in_the_channel_zone():
    # Wednesday 25 Nov 2026, 16:30 in Berlin (UTC+1) = 15:30 UTC: open.
    assert hours_state(channel(), now=at("2026-11-25T15:30:00+00:00"))["open"] is True
    # 17:30 Berlin: closed, opens Thursday 09:00 Berlin time, with the offset.
    state = hours_state(channel(), now=at("2026-11-25T16:30:00+00:00"))
    assert state["open"] is False
    assert state["next_open"] == "2026-11-26T09:00:00+01:00"
    assert state["offline_message"] == "Back soon."


def test_weekend_next_open_is_monday():
    state = hours_state(channel(), now=at("2026-11-28T12:00:00+01:00"))  # Saturday
    assert state["open"] is False
    assert state["next_open"] == "2026-11-30T09:00:00+01:00"


def test_empty_or_default_offline_message_leaves_the_wording_to_the_widget():
    from openline.openchannels.models import DEFAULT_OFFLINE_MESSAGE

    saturday = at("2026-11-28T12:00:00+01:00")
    assert hours_state(channel(offline="  "), now=saturday)["offline_message"] == ""
    default = hours_state(channel(offline=DEFAULT_OFFLINE_MESSAGE), now=saturday)
    assert default["offline_message"] == ""


def test_spring_forward_keeps_wall_clock_hours():
    # Europe/Berlin jumps from 02:00 to 03:00 on Sunday 29 March 2026.
    week = [[]] * 6 + [[["08:00", "10:00"]]]
    before = hours_state(channel(week), now=at("2026-03-29T05:30:00+00:00"))  # 07:30 CEST
    assert before["open"] is False
    assert before["next_open"] == "2026-03-29T08:00:00+02:00"
    assert hours_state(channel(week), now=at("2026-03-29T06:30:00+00:00"))["open"] is True
    # A week earlier (CET) 08:00 local is 07:00 UTC.
    assert hours_state(channel(week), now=at("2026-03-22T07:30:00+00:00"))["open"] is True
    assert hours_state(channel(week), now=at("2026-03-22T06:30:00+00:00"))["open"] is False


def test_fall_back_day_is_an_hour_longer():
    # New York falls back on Sunday 1 Nov 2026 at 02:00 EDT -> 01:00 EST.
    week = [[]] * 6 + [[["00:00", "04:00"]]]
    ny = "America/New_York"
    # 05:00 UTC = 01:00 EDT (first pass) and 06:00 UTC = 01:00 EST (second pass): both open.
    assert hours_state(channel(week, tz=ny), now=at("2026-11-01T05:00:00+00:00"))["open"]
    assert hours_state(channel(week, tz=ny), now=at("2026-11-01T06:00:00+00:00"))["open"]
    # 04:00 EST = 09:00 UTC: closed; 08:59 UTC still open (five real hours).
    assert hours_state(channel(week, tz=ny), now=at("2026-11-01T08:59:00+00:00"))["open"]
    assert not hours_state(channel(week, tz=ny), now=at("2026-11-01T09:00:00+00:00"))["open"]


def test_overnight_range_across_midnight_and_week_end():
    # Friday 22:00-24:00 then Saturday 00:00-02:00: one night shift.
    week = [[], [], [], [], [["22:00", "24:00"]], [["00:00", "02:00"]], []]
    tz = "UTC"
    assert hours_state(channel(week, tz=tz), now=at("2026-11-27T23:59:00+00:00"))["open"]
    assert hours_state(channel(week, tz=tz), now=at("2026-11-28T00:00:00+00:00"))["open"]
    assert hours_state(channel(week, tz=tz), now=at("2026-11-28T01:59:00+00:00"))["open"]
    after = hours_state(channel(week, tz=tz), now=at("2026-11-28T02:00:00+00:00"))
    assert after["open"] is False
    assert after["next_open"] == "2026-12-04T22:00:00+00:00"
    # Sunday night's 00:00-02:00 of a Monday shift is found from the Sunday.
    week = [[["00:00", "02:00"]], [], [], [], [], [], [["23:00", "24:00"]]]
    state = hours_state(channel(week, tz=tz), now=at("2026-11-29T23:30:00+00:00"))
    assert state["open"] is True
    assert hours_state(channel(week, tz=tz), now=at("2026-11-30T01:00:00+00:00"))["open"]


def test_next_open_only_within_seven_days():
    week = [[]] * 7
    state = hours_state(channel(week), now=at("2026-11-25T12:00:00+00:00"))
    assert state == {
        "enabled": True,
        "open": False,
        "offline_message": "Back soon.",
        "next_open": None,
    }
    # Open only on Wednesdays; from Wednesday after closing, next Wednesday is 7 days ahead.
    week = [[], [], [["09:00", "10:00"]], [], [], [], []]
    state = hours_state(channel(week, tz="UTC"), now=at("2026-11-25T11:00:00+00:00"))
    assert state["next_open"] == "2026-12-02T09:00:00+00:00"


def test_broken_stored_zone_keeps_the_chat_open():
    state = hours_state(channel(tz="Nowhere/Special"), now=at("2026-11-28T12:00:00+00:00"))
    assert state["open"] is True
