"""An administrator configures an Open Channel in a real browser."""

import pytest

from openline.conftest import login, screenshot
from openline.openchannels.models import OpenChannel
from openline.openchannels.services import CONSENT_REQUIRED_MESSAGE

pytestmark = pytest.mark.browser


def test_administrator_creates_channel_and_consent_warning_needs_a_consent(
    live_asgi, page, administrator, operator
):
    login(page, live_asgi.url, "ada")
    page.get_by_role("link", name="Contact center").first.click()
    screenshot(page, "console-contact-center")
    page.get_by_role("link", name="Live chat").click()
    page.get_by_role("link", name="Create Open Channel").click()
    page.get_by_label("Name").fill("Support site")
    page.get_by_label("Otto Operator (otto)").check()
    page.get_by_role("button", name="Create").click()
    page.get_by_text("Open Channel “Support site” created.").wait_for()

    page.get_by_role("tab", name="Consents").click()
    page.get_by_label("Send warning about collecting personal data").check()
    page.get_by_role("button", name="Save").click()
    error = page.get_by_role("alert").filter(has_text=CONSENT_REQUIRED_MESSAGE)
    error.wait_for()
    screenshot(page, "console-consent-warning-needs-consent")
    assert error.is_visible()
    channel = OpenChannel.objects.get(name="Support site")
    assert channel.consent_enabled is False
    assert list(channel.operators.all()) == [operator]
    assert page.js_errors == []


def test_console_is_usable_on_a_phone(live_asgi, browser, administrator):
    context = browser.new_context(viewport={"width": 390, "height": 780}, is_mobile=True)
    page = context.new_page()
    login(page, live_asgi.url, "ada")
    page.locator(".nav-toggle-label").click()
    page.get_by_role("link", name="Users").click()
    page.get_by_role("heading", name="Users").wait_for()
    screenshot(page, "console-mobile-users")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    context.close()
