"""The appearance and working-hours form of a channel's Live chat page, and its write path."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ValidationError

from openline.openchannels.appearance import update_appearance
from openline.openchannels.forms import AppearanceForm

pytestmark = pytest.mark.django_db


def data(**overrides) -> dict:
    values = {
        "display_name": "Acme support",
        "color": "#0A7D5A",
        "greeting": "Hello! How can we help?",
        "launcher_position": "left",
        "hours_enabled": "on",
        "hours_timezone": "Europe/Berlin",
        "offline_message": "We answer tomorrow.",
    }
    for index in range(5):
        values[f"day_{index}"] = "09:00-12:00, 13:00-18:00"
    values["closed_5"] = "on"
    values["closed_6"] = "on"
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def test_valid_form_gives_normalised_settings():
    form = AppearanceForm(data())
    assert form.is_valid(), form.errors
    settings = form.settings()
    assert settings["color"] == "#0a7d5a"
    assert settings["working_hours"][0] == [["09:00", "12:00"], ["13:00", "18:00"]]
    assert settings["working_hours"][5] == [] and settings["working_hours"][6] == []
    assert settings["launcher_position"] == "left"


@pytest.mark.parametrize("color", ["red", "#12345", "#1234567", "#ggg000", "javascript:x"])
def test_bad_colour_refused(color):
    form = AppearanceForm(data(color=color))
    assert not form.is_valid()
    assert "Enter a colour like #2156d9." in form.errors["color"]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Berlin; drop", "utc+1"])
def test_bad_time_zone_refused(zone):
    form = AppearanceForm(data(hours_timezone=zone))
    assert not form.is_valid()
    assert "is not a time zone" in form.errors["hours_timezone"][0]


def test_overlapping_and_inverted_ranges_refused_per_day():
    form = AppearanceForm(data(day_0="09:00-13:00, 12:00-18:00", day_2="18:00-09:00"))
    assert not form.is_valid()
    assert "overlap" in form.errors["day_0"][0]
    assert "ends before it starts" in form.errors["day_2"][0]
    assert "24:00" in form.errors["day_2"][0]


def test_open_day_without_hours_and_closed_week_refused():
    form = AppearanceForm(data(day_1=""))
    assert not form.is_valid()
    assert form.errors["day_1"] == ["Enter the hours, or tick Closed."]
    closed = {f"closed_{i}": "on" for i in range(7)}
    form = AppearanceForm(data(**closed))
    assert not form.is_valid()
    assert "open on at least one day" in form.non_field_errors()[0]


def test_closed_day_ignores_its_text_and_greeting_is_limited():
    form = AppearanceForm(data(day_0="nonsense", closed_0="on"))
    assert form.is_valid(), form.errors
    assert form.settings()["working_hours"][0] == []
    form = AppearanceForm(data(greeting="x" * 501))
    assert not form.is_valid() and "greeting" in form.errors


def test_update_appearance_saves_and_audits(channel, administrator, caplog):
    form = AppearanceForm(data())
    assert form.is_valid()
    with caplog.at_level(logging.INFO, logger="openline.audit.openchannels"):
        update_appearance(actor=administrator, channel=channel, **form.settings())
    channel.refresh_from_db()
    assert channel.title == "Acme support"
    assert channel.color == "#0a7d5a"
    assert channel.hours_enabled and channel.hours_timezone == "Europe/Berlin"
    audit = [r.getMessage() for r in caplog.records if r.name == "openline.audit.openchannels"]
    assert len(audit) == 1 and "by ada" in audit[0] and "'color'" in audit[0]
    # Saving the same values again changes (and logs) nothing.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="openline.audit.openchannels"):
        update_appearance(actor=administrator, channel=channel, **form.settings())
    assert not [r for r in caplog.records if r.name == "openline.audit.openchannels"]


def test_update_appearance_refuses_bad_values_from_any_caller(channel, administrator):
    with pytest.raises(ValidationError):
        update_appearance(actor=administrator, channel=channel, color="#zzzzzz")
    with pytest.raises(ValidationError):
        update_appearance(actor=administrator, channel=channel, hours_timezone="Nowhere/Land")
    with pytest.raises(ValidationError):
        update_appearance(
            actor=administrator, channel=channel, working_hours=[[["10:00", "09:00"]]] * 7
        )
    channel.refresh_from_db()
    assert channel.color == "#2156d9" and channel.title == "Website"
