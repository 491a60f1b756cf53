"""Appearance, working hours and preview of the widget, as the frame, loader and console serve them."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from openline.livechat.origins import CONFIG_KEY
from openline.openchannels.appearance import update_appearance
from openline.openchannels.services import set_connector

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/console/contact-center/live-chat/{pk}/"


def frame_config(response) -> dict:
    match = re.search(
        r'<script id="ol-config" type="application/json">(.*?)</script>', response.text, re.S
    )
    assert match, response.text[:500]
    return json.loads(match[1])


def allow(channel, administrator, origins):
    set_connector(
        actor=administrator,
        channel=channel,
        kind="livechat",
        is_enabled=True,
        config={CONFIG_KEY: origins},
    )


def test_frame_config_carries_appearance_and_hours(client, channel, administrator):
    update_appearance(
        actor=administrator,
        channel=channel,
        display_name="Acme <b>help</b>",
        color="#0a7d5a",
        greeting="Hi & welcome",
        launcher_position="left",
    )
    config = frame_config(client.get(f"/widget/{channel.code}/frame"))
    assert config["appearance"] == {
        "title": "Acme <b>help</b>",
        "color": "#0a7d5a",
        "greeting": "Hi & welcome",
        "position": "left",
    }
    assert config["hours"] == {
        "enabled": False,
        "open": True,
        # The unchanged default is left to the widget, which says it in the client's language.
        "offline_message": "",
        "next_open": None,
    }
    assert config["preview"] is False


def test_frame_says_closed_outside_working_hours(client, channel, administrator):
    update_appearance(
        actor=administrator,
        channel=channel,
        hours_enabled=True,
        hours_timezone="Pacific/Kiritimati",
        working_hours=[[]] * 7,
        offline_message="Closed for the holidays.",
    )
    hours = frame_config(client.get(f"/widget/{channel.code}/frame"))["hours"]
    assert hours == {
        "enabled": True,
        "open": False,
        "offline_message": "Closed for the holidays.",
        "next_open": None,
    }


def test_blank_display_name_shows_the_channel_name(client, channel):
    config = frame_config(client.get(f"/widget/{channel.code}/frame"))
    assert config["appearance"]["title"] == "Website"
    assert config["appearance"]["color"] == "#2156d9"
    assert config["appearance"]["position"] == "right"


def test_preview_only_for_staff_of_the_channel(channel, administrator, operator, other_operator):
    allow(channel, administrator, ["https://shop.example"])
    url = f"/widget/{channel.code}/frame?preview=1"
    visitor = Client().get(url)
    assert frame_config(visitor)["preview"] is False
    assert "frame-ancestors https://shop.example" in visitor["Content-Security-Policy"]
    for user in (administrator, operator):
        staff = Client()
        staff.force_login(user)
        response = staff.get(url)
        assert frame_config(response)["preview"] is True
        csp = response["Content-Security-Policy"]
        assert csp.endswith("frame-ancestors 'self'") and "shop.example" not in csp
        # Without the flag staff get the ordinary widget.
        assert frame_config(staff.get(f"/widget/{channel.code}/frame"))["preview"] is False
    outsider = Client()
    outsider.force_login(other_operator)  # an operator of another channel
    assert frame_config(outsider.get(url))["preview"] is False


def test_auditor_gets_no_preview(channel, auditor):
    client = Client()
    client.force_login(auditor)
    assert frame_config(client.get(f"/widget/{channel.code}/frame?preview=1"))["preview"] is False


def test_loader_gets_colour_position_label_and_escaped_origins(client, channel, administrator):
    allow(channel, administrator, ["https://shop.example", "http://localhost:8080"])
    update_appearance(
        actor=administrator,
        channel=channel,
        display_name='Shop</script><script>alert(1)</script>"',
        color="#ff8800",
        launcher_position="left",
    )
    response = client.get(f"/widget/{channel.code}.js")
    body = response.text
    assert response.status_code == 200
    assert "</script>" not in body and "<script>" not in body
    assert '["https://shop.example", "http://localhost:8080"]' in body
    assert "#ff8800" in body
    assert '"left"' in body


def test_loader_context_escapes_html_in_origin_json(rf, channel, administrator):
    from openline.livechat.views import loader_context

    allow(channel, administrator, ["https://shop.example"])
    channel.refresh_from_db()
    context = loader_context(rf.get("/"), channel)
    assert context["allowed_origins_json"] == '["https://shop.example"]'
    assert context["label"] == "Website" and context["position"] == "right"
    from openline.livechat.views import _script_json

    assert _script_json(["</script>&"]) == '["\\u003c/script\\u003e\\u0026"]'


def test_settings_page_warns_without_allowed_websites(admin_client, channel, administrator):
    url = SETTINGS_URL.format(pk=channel.pk)
    warning = "Add the website that will show the chat, or the pasted snippet will not open"
    page = admin_client.get(url)
    assert warning in page.text
    listing = admin_client.get("/console/contact-center/connectors/livechat/")
    assert "No website allowed" in listing.text
    allow(channel, administrator, ["https://shop.example"])
    assert warning not in admin_client.get(url).text
    assert (
        "No website allowed"
        not in admin_client.get("/console/contact-center/connectors/livechat/").text
    )
    # A messenger list never shows the live chat warning.
    allow(channel, administrator, [])
    assert (
        "No website allowed"
        not in admin_client.get("/console/contact-center/connectors/telegram/").text
    )


def test_settings_page_saves_appearance_and_keeps_origins(admin_client, channel, administrator):
    allow(channel, administrator, ["https://shop.example"])
    url = SETTINGS_URL.format(pk=channel.pk)
    page = admin_client.get(url)
    assert f'src="/widget/{channel.code}/frame?preview=1"' in page.text
    assert "settings.js" in page.text and "<script>" not in page.text
    form = {
        "form": "appearance",
        "display_name": "Acme",
        "color": "#123abc",
        "greeting": "Hello",
        "launcher_position": "right",
        "hours_enabled": "on",
        "hours_timezone": "Europe/Berlin",
        "offline_message": "Later",
        **{f"day_{i}": "08:00-16:00" for i in range(5)},
        "closed_5": "on",
        "closed_6": "on",
    }
    bad = admin_client.post(url, {**form, "color": "blue", "day_3": "16:00-08:00"})
    assert bad.status_code == 200
    assert "Enter a colour like #2156d9." in bad.text and "ends before it starts" in bad.text
    channel.refresh_from_db()
    assert channel.color == "#2156d9"
    good = admin_client.post(url, form)
    assert good.status_code == 302
    channel.refresh_from_db()
    assert (channel.title, channel.color, channel.hours_enabled) == ("Acme", "#123abc", True)
    assert channel.working_hours[0] == [["08:00", "16:00"]] and channel.working_hours[6] == []
    assert channel.connector("livechat").config[CONFIG_KEY] == ["https://shop.example"]
    again = admin_client.get(url)
    assert 'value="08:00-16:00"' in again.text and 'value="#123abc"' in again.text


def test_operators_cannot_post_appearance(operator_client, channel):
    url = SETTINGS_URL.format(pk=channel.pk)
    response = operator_client.post(url, {"form": "appearance", "color": "#000000"})
    assert response.status_code == 403
    channel.refresh_from_db()
    assert channel.color == "#2156d9"
