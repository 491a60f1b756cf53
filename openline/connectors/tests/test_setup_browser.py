"""The connector page in a real browser: connect Telegram with the keyboard, at two widths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from openline.connectors.tests.helpers import TELEGRAM_TOKEN, answer_platform_apis
from openline.core import secrets as vault

pytestmark = pytest.mark.browser
# Not imported from openline.conftest: that module pulls in the ASGI app and with it live
# chat, which the connectors may not import (import-linter's independence contract).
ARTIFACTS = Path(
    os.environ.get("OPENLINE_TEST_ARTIFACTS", Path(__file__).resolve().parents[3] / "test-results")
)
PASSWORD = "correct-horse-battery-staple-42"  # the personas' password (openline/conftest.py)


def login(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def screenshot(page, name: str) -> None:
    path = ARTIFACTS / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


@pytest.fixture(autouse=True)
def own_key_file(settings, tmp_path):
    settings.OPENLINE_SECRETS_KEYS = ""
    settings.OPENLINE_SECRETS_KEY_FILE = str(tmp_path / "fernet.keys")
    vault.forget_cached_keys()
    yield
    vault.forget_cached_keys()


def test_connect_telegram_from_the_connectors_tab(
    browser, live_asgi, fake_platform, administrator, channel
):
    answer_platform_apis(fake_platform)
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, live_asgi.url, "ada")
    page.goto(f"{live_asgi.url}/console/contact-center/open-channels/{channel.pk}/connectors/")
    row = page.locator("#connector-telegram")
    expect(row.locator(".badge")).to_have_text("Not connected")
    row.get_by_role("link", name="Connect: Telegram").click()
    # Keyboard only: the token field, then the mode, then the button.
    page.get_by_label("Bot token").focus()
    page.keyboard.type(TELEGRAM_TOKEN)
    page.keyboard.press("Enter")
    expect(page.locator("#connector-state")).to_have_text("Connected")
    expect(page.locator("#connector-detail")).to_have_text("@cc_support_test_bot")
    html = page.content()
    assert TELEGRAM_TOKEN not in html and f"saved ••••{TELEGRAM_TOKEN[-4:]}" in html
    assert page.get_by_label("Bot token").input_value() == ""
    webhook = page.locator("#webhook-url").input_value()
    assert webhook.startswith(live_asgi.url + "/hooks/telegram/")
    screenshot(page, "connector-telegram-1366")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "connector-telegram-390")
    # Disconnect asks first; the confirmation is reachable by keyboard.
    page.locator("summary", has_text="Disconnect").focus()
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Yes, disconnect").click()
    expect(page.locator("#connector-state")).to_have_text("Not connected")
    page.goto(f"{live_asgi.url}/console/contact-center/open-channels/{channel.pk}/connectors/")
    expect(page.locator("#connector-telegram .badge")).to_have_text("Not connected")
    assert errors == []
    context.close()
