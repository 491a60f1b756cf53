"""Password reset and the forced change, in a real browser, by keyboard."""

from __future__ import annotations

import pytest

from openline.conftest import login, screenshot

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a-brand-new-passphrase-77"


def test_reset_then_forced_change_by_keyboard(live_asgi, browser, administrator, operator):
    admin = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    login(admin, live_asgi.url, "ada")
    admin.goto(f"{live_asgi.url}/console/users/")
    admin.get_by_role("link", name="Reset password").first.click()
    admin.get_by_role("heading", name="Reset password of otto").wait_for()
    admin.get_by_role("button", name="Reset password").click()
    temporary = admin.locator("#temporary-password").inner_text().strip()
    screenshot(admin, "password-reset-shown-once")
    admin.context.close()

    # A phone-sized screen, and only the keyboard.
    otto = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    otto.set_default_timeout(10_000)
    login(otto, live_asgi.url, "otto", temporary)
    otto.wait_for_url(f"{live_asgi.url}/console/password/")
    otto.get_by_text("An administrator reset your password").wait_for()
    otto.goto(f"{live_asgi.url}/console/crm/")
    assert otto.url == f"{live_asgi.url}/console/password/"
    screenshot(otto, "password-forced-change-phone")
    otto.get_by_label("Old password").focus()
    otto.keyboard.type(temporary)
    otto.keyboard.press("Tab")
    otto.keyboard.type(NEW_PASSWORD)
    otto.keyboard.press("Tab")
    otto.keyboard.type(NEW_PASSWORD)
    otto.keyboard.press("Enter")
    otto.get_by_text("Your password was changed").wait_for()
    assert "/console/password/" not in otto.url
    otto.goto(f"{live_asgi.url}/console/crm/")
    assert otto.url == f"{live_asgi.url}/console/crm/"
    assert not otto.context.pages[0].is_closed()
    otto.context.close()
