"""Awaiting consent in a real browser: list, select, confirm, deleted; desktop and phone."""

from __future__ import annotations

import pytest

from openline.conftest import login, screenshot
from openline.conversations.models import Visitor
from openline.crm.tests.messenger_helpers import awaiting_client

pytestmark = pytest.mark.browser


def test_an_operator_deletes_an_unconfirmed_client_from_the_list(
    live_asgi, page, browser, channel, operator
):
    awaiting_client(channel, name="Иван Петров")
    kept = awaiting_client(channel, external_id="111222444", name="Zoë Müller", origin="viber")
    login(page, live_asgi.url, "otto")
    page.get_by_role("link", name="Awaiting consent").click()
    page.get_by_role("heading", name="Awaiting consent").wait_for()
    assert page.get_by_text("Иван Петров").count() >= 1
    screenshot(page, "awaiting-consent")
    page.get_by_label("Select Иван Петров").check()
    page.get_by_role("button", name="Delete client data of selected…").click()
    page.get_by_role("button", name="Delete client data").last.wait_for()
    screenshot(page, "awaiting-consent-confirm")
    page.get_by_role("button", name="Delete client data").last.click()
    page.get_by_role("heading", name="Awaiting consent").wait_for()
    assert Visitor.objects.filter(name="Иван Петров").count() == 0
    assert Visitor.objects.get(pk=kept.pk).awaiting_consent_since is not None
    assert page.js_errors == []

    phone = browser.new_context(viewport={"width": 390, "height": 844})
    phone_page = phone.new_page()
    login(phone_page, live_asgi.url, "otto")
    phone_page.goto(f"{live_asgi.url}/console/crm/awaiting/")
    phone_page.get_by_text("Zoë Müller").first.wait_for()
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
    screenshot(phone_page, "awaiting-consent-phone")
    phone.close()
