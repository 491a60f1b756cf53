"""What the administrator configures, as clients see it: look, operators, hours, the loader."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from openline.accounts.avatars import avatar_url
from openline.conftest import login
from openline.conversations.models import Conversation, Message
from openline.livechat.tests.conftest import HostSite, nothing_stored
from openline.livechat.tests.helpers import (
    FRAME,
    new_context,
    on_server,
    open_chat,
    sent,
    shot,
    write,
)
from openline.openchannels.models import OpenChannel

pytestmark = pytest.mark.browser


def configure(channel, **fields) -> None:
    OpenChannel.objects.filter(pk=channel.pk).update(**fields)


def picture(user) -> None:
    from PIL import Image

    from openline.accounts.avatars import set_avatar

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 60, 90)).save(buffer, format="PNG")
    set_avatar(
        user=user,
        upload=SimpleUploadedFile("me.png", buffer.getvalue(), content_type="image/png"),
    )


def css(locator, prop: str) -> str:
    return locator.evaluate(f"(e) => getComputedStyle(e).{prop}")


def test_title_colour_greeting_left_launcher_and_operator_faces(
    browser, live_asgi, host_site, channel, operator, other_operator
):
    from openline.conversations import actions

    configure(
        channel,
        display_name="Acme Support",
        color="#ffd400",
        greeting="Hi! This is the Acme team. Ask us anything.",
        launcher_position="left",
    )
    channel.operators.add(other_operator)
    picture(operator)
    context = new_context(browser)
    page = context.new_page()
    page.goto(host_site.url)
    launcher = page.get_by_role("button", name="Chat with us")
    assert launcher.bounding_box()["x"] < 100
    assert css(launcher, "backgroundColor") == "rgb(255, 212, 0)"
    # A light colour gets dark ink, on the launcher and in the chat.
    assert launcher.locator("path").get_attribute("fill") == "#111"
    frame = open_chat(page, host_site.url)
    assert page.locator(FRAME).bounding_box()["x"] < 100
    head = frame.locator(".ol-head")
    expect(head.get_by_role("heading")).to_have_text("Acme Support")
    assert css(head, "backgroundColor") == "rgb(255, 212, 0)"
    assert css(head, "color") == "rgb(17, 17, 17)"
    expect(frame.locator(".ol-welcome .ol-bubble")).to_have_text(
        "Hi! This is the Acme team. Ask us anything."
    )
    write(frame, "Do you ship to Austria?")
    frame.get_by_role("button", name="I accept").click()
    sent(frame, "Do you ship to Austria?")
    mine = frame.locator(".ol-me .ol-bubble").first
    assert css(mine, "backgroundColor") == "rgb(255, 212, 0)"
    assert css(mine, "color") == "rgb(17, 17, 17)"

    conversation = Conversation.objects.get()
    on_server(
        live_asgi,
        actions.send_reply,
        conversation=conversation,
        actor=operator,
        text="Yes, within 3 days.",
    )
    on_server(
        live_asgi,
        actions.send_reply,
        conversation=conversation,
        actor=operator,
        text="Shipping is free from 50 €.",
    )
    on_server(
        live_asgi,
        actions.send_reply,
        conversation=conversation,
        actor=other_operator,
        text="I'm Olivia, I'll take over from here.",
    )
    olivia = frame.locator(".ol-op").filter(has_text="I'm Olivia")
    olivia.wait_for()
    otto = frame.locator(".ol-op").filter(has_text="Yes, within 3 days.")
    expect(otto.locator(".ol-name")).to_have_text("Otto Operator")
    operator.refresh_from_db()
    assert otto.locator("img.ol-av").get_attribute("src") == avatar_url(operator)
    expect(otto.locator("img.ol-av")).to_have_js_property("complete", True)
    assert otto.locator("img.ol-av").evaluate("img => img.naturalWidth") > 0
    # The same operator's next line does not repeat the name and picture.
    expect(
        frame.locator(".ol-op").filter(has_text="Shipping is free").locator(".ol-who")
    ).to_be_hidden()
    expect(olivia.locator(".ol-name")).to_have_text("Olivia Operator")
    expect(olivia.locator(".ol-av")).to_have_text("OO")
    assert css(olivia.locator(".ol-av"), "backgroundColor") == "rgb(255, 212, 0)"
    shot(page, "appearance-1366")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    size = page.locator(FRAME).bounding_box()
    assert size["width"] == 390 and size["height"] == 844
    shot(page, "appearance-390")
    context.close()


def test_a_dark_colour_gets_white_text(browser, live_asgi, host_site, channel):
    configure(channel, color="#0b3d2e")
    context = new_context(browser)
    page = context.new_page()
    frame = open_chat(page, host_site.url)
    head = frame.locator(".ol-head")
    assert css(head, "backgroundColor") == "rgb(11, 61, 46)"
    assert css(head, "color") == "rgb(255, 255, 255)"
    assert css(frame.locator(".ol-send"), "color") == "rgb(255, 255, 255)"
    context.close()


def test_outside_working_hours_a_banner_and_the_message_still_arrives(
    browser, live_asgi, host_site, channel
):
    later = (datetime.now(UTC) + timedelta(days=2)).weekday()
    week: list[list[list[str]]] = [[] for _ in range(7)]
    week[later] = [["09:00", "17:00"]]
    configure(
        channel,
        hours_enabled=True,
        hours_timezone="Europe/Berlin",
        working_hours=week,
        offline_message="We are closed right now. Leave a message and we reply in the morning.",
    )
    for width, height in ((1366, 900), (390, 844)):
        context = new_context(browser, width, height)
        page = context.new_page()
        frame = open_chat(page, host_site.url)
        banner = frame.get_by_role("status").filter(has_text="We are closed right now")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Back on")
        write(frame, f"Please call me back ({width})")
        frame.get_by_role("button", name="I accept").click()
        sent(frame, f"Please call me back ({width})")
        expect(banner).to_be_visible()
        shot(page, f"offline-hours-{width}")
        context.close()
    assert Message.objects.filter(text__startswith="Please call me back").count() == 2


def test_the_loader_on_a_website_that_is_not_allowed_shows_nothing_and_warns(
    browser, live_asgi, host_site, channel
):
    other = HostSite(live_asgi.url, channel.code)
    try:
        context = new_context(browser)
        page = context.new_page()
        warnings: list[str] = []
        page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
        with page.expect_response(re.compile(r".*/widget/[^/]+\.js$")):
            page.goto(other.url)
        page.wait_for_timeout(500)
        assert page.get_by_role("button", name="Chat with us").count() == 0
        assert page.locator("iframe").count() == 0
        assert any(other.origin in w and "Allowed websites" in w for w in warnings), warnings
        # The allowed website still gets its chat.
        page.goto(host_site.url)
        expect(page.get_by_role("button", name="Chat with us")).to_be_visible()
        context.close()
    finally:
        other.stop()


def test_a_wildcard_allowed_website_matches_its_subdomains(
    browser, live_asgi, channel, administrator
):
    """``http://*.localhost:PORT`` allows shop.localhost in the loader as in frame-ancestors."""
    from openline.livechat.origins import CONFIG_KEY
    from openline.openchannels.services import set_connector

    # Chromium resolves every *.localhost name to the loopback address.
    shop = HostSite(live_asgi.url, channel.code, bind="127.0.0.1", hostname="shop.localhost")
    port = shop.server.server_address[1]
    set_connector(
        actor=administrator,
        channel=channel,
        kind="livechat",
        is_enabled=True,
        config={CONFIG_KEY: [f"http://*.localhost:{port}"]},
    )
    try:
        context = new_context(browser)
        page = context.new_page()
        warnings: list[str] = []
        page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
        page.goto(shop.url)
        page.get_by_role("button", name="Chat with us").click()
        frame = page.frame_locator(FRAME)
        expect(frame.locator("#ol-text")).to_be_visible()
        assert not [w for w in warnings if "Allowed websites" in w], warnings
        # The bare name is not a subdomain: neither the loader nor the frame accept it.
        page.goto(f"http://localhost:{port}/pricing")
        page.wait_for_timeout(500)
        assert page.get_by_role("button", name="Chat with us").count() == 0
        assert any("Allowed websites" in w for w in warnings), warnings
        context.close()
    finally:
        shop.stop()


def test_preview_shows_the_real_widget_and_sends_nothing(
    browser, live_asgi, channel, administrator
):
    configure(channel, display_name="Acme Support", color="#7a1fa2", greeting="Welcome to Acme!")
    context = new_context(browser, 420, 640)
    page = context.new_page()
    login(page, live_asgi.url, "ada")
    sockets: list[str] = []
    posts: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url) if "/ws/widget/" in ws.url else None)
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(f"{live_asgi.url}/widget/{channel.code}/frame?preview=1")
    expect(page.get_by_role("heading", name="Acme Support")).to_be_visible()
    expect(page.locator(".ol-welcome")).to_have_text("Welcome to Acme!")
    expect(page.locator(".ol-me .ol-bubble")).to_have_text("Hi! Do you ship to Austria?")
    expect(page.locator(".ol-op .ol-name")).to_have_text("Alex")
    expect(page.locator(".ol-op .ol-av")).to_have_text("A")
    gate = page.locator("#ol-gate")
    expect(gate.get_by_text("We process your name, messages and IP address")).to_be_visible()
    assert css(page.locator(".ol-head"), "backgroundColor") == "rgb(122, 31, 162)"
    shot(page, "preview")
    page.get_by_role("button", name="I accept").click()
    expect(gate).to_be_hidden()
    page.get_by_label("Write a message…").fill("a test line")
    page.get_by_label("Write a message…").press("Enter")
    expect(page.locator(".ol-me .ol-bubble").filter(has_text="a test line")).to_be_visible()
    page.wait_for_timeout(300)
    assert sockets == [] and posts == []
    assert page.evaluate("() => localStorage.length") == 0
    assert nothing_stored() == {"visitors": 0, "conversations": 0, "messages": 0}
    context.close()

    # Without a signed-in member of the channel, ?preview=1 is the ordinary widget.
    context = new_context(browser, 420, 640)
    page = context.new_page()
    page.goto(f"{live_asgi.url}/widget/{channel.code}/frame?preview=1")
    page.get_by_label("Write a message…").wait_for()
    assert page.locator(".ol-op .ol-name").count() == 0
    expect(page.locator("#ol-gate")).to_be_hidden()
    context.close()
