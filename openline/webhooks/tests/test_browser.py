"""Webhook pages in a real browser: add an endpoint, copy the secret, see deliveries; desktop and phone."""

from __future__ import annotations

import pytest

from openline.conftest import login, screenshot
from openline.conversations.actions import create_visitor, receive_message, start_conversation
from openline.webhooks import signing
from openline.webhooks.models import WebhookEndpoint
from openline.webhooks.tests.helpers import deliver_all
from openline.webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.browser


def test_an_administrator_adds_an_endpoint_and_watches_deliveries(
    live_asgi, page, browser, administrator, channel
):
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, live_asgi.url, "ada")
    page.goto(f"{live_asgi.url}/console/webhooks/")
    page.get_by_role("heading", name="Webhooks").wait_for()
    screenshot(page, "webhooks/list-empty")
    page.get_by_role("link", name="Add endpoint").click()
    with Receiver(fail_first=1) as receiver:
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("Description").fill("Data warehouse")
        # Keyboard: tab to an event and tick it with the space bar.
        page.get_by_label("conversation.started").focus()
        page.keyboard.press("Space")
        page.get_by_label("message.received").check()
        screenshot(page, "webhooks/form")
        page.get_by_role("button", name="Add endpoint").click()
        page.get_by_role("heading", name="Endpoint added").wait_for()
        endpoint = WebhookEndpoint.objects.get()
        secret = signing.unseal(endpoint.secret_encrypted)
        assert page.get_by_label("Signing secret").input_value() == secret
        screenshot(page, "webhooks/secret")
        page.get_by_role("link", name="I have copied it").click()
        page.get_by_role("heading", name="Data warehouse").wait_for()
        assert secret not in page.content()

        visitor = create_visitor(channel=channel, origin="livechat")
        conversation = start_conversation(channel=channel, visitor=visitor)
        receive_message(conversation=conversation, visitor=visitor, text="Hello <b>there</b>")
        deliver_all()
        page.reload()
        page.get_by_text("HTTP 503").first.wait_for()
        screenshot(page, "webhooks/detail")
        page.get_by_role("button", name="Resend conversation.started").click()
        page.get_by_text("Sent again: the endpoint answered HTTP 204.").wait_for()
    assert len(receiver.accepted()) == 3
    page.goto(f"{live_asgi.url}/console/webhooks/")
    page.get_by_role("link", name="Data warehouse").wait_for()
    screenshot(page, "webhooks/list")
    assert page.js_errors == []

    phone = browser.new_context(viewport={"width": 390, "height": 844})
    phone_page = phone.new_page()
    login(phone_page, live_asgi.url, "ada")
    for path, name in (
        ("/console/webhooks/", "list"),
        (f"/console/webhooks/{endpoint.pk}/", "detail"),
        ("/console/webhooks/new/", "form"),
    ):
        phone_page.goto(f"{live_asgi.url}{path}")
        phone_page.locator("h1").wait_for()
        screenshot(phone_page, f"webhooks/phone-{name}")
        width = phone_page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways on a phone ({width} px)"
    phone.close()
