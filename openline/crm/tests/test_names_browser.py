"""In a real browser: Save to CRM prefilled from the chat, the CRM name in the inbox, and the
consent records still shown in the chat after the client's data was deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from openline.conftest import login
from openline.crm.models import CrmItem
from openline.crm.tests.conftest import accept_consent, make_chat

pytestmark = pytest.mark.browser

SHOTS = Path("var/screenshots/crm")
SIZES = {"desktop": (1366, 900), "phone": (390, 844)}


def _page(browser, size: str):
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return context, page


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _no_horizontal_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_save_to_crm_prefilled_then_named_then_deleted(
    live_asgi, browser, channel, operator, administrator, size
):
    chat = make_chat(
        channel,
        texts=[
            "Hi, my name is Jane Doe. Do you ship to Berlin?",
            "Mail me at jane.doe@example.com or call +49 30 1234-567",
        ],
    )
    accept_consent(chat)
    context, page = _page(browser, size)
    login(page, live_asgi.url, "otto")

    page.goto(f"{live_asgi.url}/console/crm/conversations/{chat.pk}/save/")
    page.get_by_role("heading", name="Save to CRM").wait_for()
    assert page.get_by_label("Name").input_value() == "Jane Doe"
    assert page.get_by_label("Email").input_value() == "jane.doe@example.com"
    assert page.get_by_label("Phone").input_value() == "+49 30 1234-567"
    found = page.get_by_test_id("crm-found")
    assert "Found in the client's messages" in found.inner_text()
    _no_horizontal_scroll(page)
    _shot(page, f"save-prefilled-{size}")
    # The operator corrects what was found, with the keyboard, and saves.
    page.get_by_label("Name").fill("Jane Q. Doe")
    page.get_by_label("Name").press("Enter")
    page.get_by_text("Saved to CRM as Lead").wait_for()
    item = CrmItem.objects.get()
    assert item.name == "Jane Q. Doe"
    assert page.get_by_role("heading", name="Jane Q. Doe").is_visible()

    page.goto(f"{live_asgi.url}/console/inbox/")
    row = page.locator(f'[data-id="{chat.pk}"], a[href$="/inbox/{chat.pk}/"]').first
    row.wait_for()
    assert "Jane Q. Doe" in page.locator("body").inner_text()
    page.goto(f"{live_asgi.url}/console/inbox/?q=30%201234567")
    assert "Jane Q. Doe" in page.locator("body").inner_text()
    _shot(page, f"inbox-named-{size}")
    assert page.js_errors == []
    context.close()

    context, page = _page(browser, size)
    login(page, live_asgi.url, "ada")
    page.goto(f"{live_asgi.url}/console/crm/items/{item.pk}/")
    page.get_by_role("link", name="Delete client data").click()
    page.get_by_role("button", name="Delete client data").click()
    page.get_by_text("consent records kept as proof").wait_for()
    page.goto(f"{live_asgi.url}/console/inbox/{chat.pk}/")
    consent = page.locator("#cp-consent-state")
    if not consent.is_visible():
        # On a phone the client panel may sit behind a button.
        toggle = page.get_by_role("button", name="Client")
        if toggle.count():
            toggle.first.click()
    text = page.locator("#client-panel").inner_text()
    assert "Consent given" in text and "No consent recorded" not in text
    assert "Client data deleted" in text and "Jane" not in page.locator("body").inner_text()
    assert page.locator("#client-panel .cp-records li").count() == 2
    _no_horizontal_scroll(page)
    _shot(page, f"chat-after-deletion-{size}")
    assert page.js_errors == []
    context.close()
