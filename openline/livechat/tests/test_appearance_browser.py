"""The Live chat settings page in a real browser: copy button, warning, preview, saving."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from openline.conftest import login
from openline.openchannels.models import OpenChannel

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots" / "appearance"


def admin_page(browser, live_asgi, width=1366, height=900):
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    context.set_default_timeout(10_000)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_asgi.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    login(page, live_asgi.url, "ada")
    return context, page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_copy_snippet_warn_preview_and_save(browser, live_asgi, channel):
    context, page = admin_page(browser, live_asgi)
    url = f"{live_asgi.url}/console/contact-center/live-chat/{channel.pk}/"
    page.goto(url)
    warning = page.locator("#no-websites")
    expect(warning).to_contain_text(
        "Add the website that will show the chat, or the pasted snippet will not open"
    )
    # The preview is the real widget in preview mode, embedded by the console itself.
    preview = page.frame_locator("iframe.lc-preview-frame")
    expect(preview.locator("body")).to_be_visible()
    shot(page, "live-chat-settings-1366")

    # Keyboard: focus the copy button and press Enter.
    button = page.get_by_role("button", name="Copy embed code")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#embed-copied")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f'<script src="{live_asgi.url}/widget/{channel.code}.js" async></script>'

    # Allow a website: the warning goes away.
    page.get_by_label("Websites that may show the chat").fill("https://shop.example")
    page.get_by_role("button", name="Save websites").click()
    expect(page.get_by_text("Live chat settings saved.")).to_be_visible()
    expect(page.locator("#no-websites")).to_have_count(0)

    # Appearance and hours: a closed day disables its hours; errors are shown next to the day.
    page.get_by_label("Name shown to clients").fill("Acme help")
    page.get_by_label("Greeting").fill("Hello! Ask us anything.")
    page.get_by_label("Chat button position").select_option("left")
    page.locator("#id_color").evaluate(
        "el => { el.value = '#0a7d5a'; el.dispatchEvent(new Event('input')); }"
    )
    page.get_by_label("Use working hours").check()
    page.get_by_label("Time zone").fill("Europe/Berlin")
    tuesday = page.get_by_label("Tuesday", exact=True)
    tuesday.fill("18:00-09:00")
    saturday_closed = page.get_by_label("Saturday closed")
    expect(saturday_closed).to_be_checked()
    expect(page.get_by_label("Saturday", exact=True)).to_be_disabled()
    saturday_closed.uncheck()
    expect(page.get_by_label("Saturday", exact=True)).to_be_enabled()
    page.get_by_label("Saturday", exact=True).fill("10:00-14:00")
    page.get_by_role("button", name="Save appearance and hours").click()
    expect(page.get_by_text("ends before it starts")).to_be_visible()
    page.get_by_label("Tuesday", exact=True).fill("09:00-18:00")
    page.get_by_role("button", name="Save appearance and hours").click()
    expect(page.get_by_text("Appearance and working hours saved.")).to_be_visible()

    channel = OpenChannel.objects.get(pk=channel.pk)
    assert channel.title == "Acme help" and channel.color == "#0a7d5a"
    assert channel.launcher_position == "left" and channel.hours_enabled
    assert channel.working_hours[5] == [["10:00", "14:00"]] and channel.working_hours[6] == []

    # The preview was reloaded with the saved appearance.
    preview = page.frame_locator("iframe.lc-preview-frame")
    expect(preview.get_by_text("Acme help").first).to_be_visible()
    shot(page, "live-chat-settings-saved-1366")
    assert page.js_errors == []  # type: ignore[attr-defined]
    context.close()


def test_settings_page_on_a_phone(browser, live_asgi, channel):
    context, page = admin_page(browser, live_asgi, width=390, height=844)
    page.goto(f"{live_asgi.url}/console/contact-center/live-chat/{channel.pk}/")
    expect(page.locator("#no-websites")).to_be_visible()
    # Nothing is wider than the screen.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, overflow
    expect(page.get_by_label("Monday", exact=True)).to_be_visible()
    shot(page, "live-chat-settings-390")
    context.close()


def test_copy_falls_back_to_selecting_the_text(browser, live_asgi, channel):
    context, page = admin_page(browser, live_asgi)
    page.goto(f"{live_asgi.url}/console/contact-center/live-chat/{channel.pk}/")
    # A browser without clipboard access (e.g. an http page on another host).
    page.evaluate("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page.get_by_role("button", name="Copy embed code").click()
    expect(page.locator("#embed-copied")).to_contain_text("press Ctrl+C")
    selected = page.evaluate("String(window.getSelection())")
    assert selected.startswith("<script src=")
    context.close()


def test_profile_page_upload_in_a_browser(browser, live_asgi, administrator, tmp_path):
    import io

    from PIL import Image

    picture = tmp_path / "me.png"
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (30, 90, 200)).save(buffer, format="PNG")
    picture.write_bytes(buffer.getvalue())
    for width, height in ((1366, 900), (390, 844)):
        context, page = admin_page(browser, live_asgi, width=width, height=height)
        page.goto(f"{live_asgi.url}/console/profile/")
        if width == 1366:
            page.get_by_label("Name shown to clients").fill("Ada from Acme")
            page.get_by_label("Picture").set_input_files(str(picture))
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_text("Your profile was saved.")).to_be_visible()
        image = page.get_by_role("img", name="Your picture")
        expect(image).to_be_visible()
        page.wait_for_function(
            "() => { const i = document.querySelector('img.profile-avatar');"
            " return i && i.complete && i.naturalWidth === 160; }"
        )
        shot(page, f"profile-{width}")
        context.close()


def test_channel_list_flags_a_live_chat_without_websites(browser, live_asgi, channel):
    for width, height in ((1366, 900), (390, 844)):
        context, page = admin_page(browser, live_asgi, width=width, height=height)
        page.goto(f"{live_asgi.url}/console/contact-center/connectors/livechat/")
        badge = page.locator(".no-websites")
        expect(badge).to_have_text("No website allowed")
        page.get_by_role("link", name="Add a website").click()
        expect(page.get_by_role("heading", name="Live chat on “Website”")).to_be_visible()
        page.go_back()
        shot(page, f"channel-list-{width}")
        context.close()
