"""In a real browser: a messenger reply's delivery mark follows the platform live; Resend works."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from openline.conftest import login, screenshot
from openline.conversations import inbound, outbox
from openline.conversations.models import OutboxItem
from openline.conversations.tests.inbound_helpers import KIND, consented, with_telegram
from openline.livechat.tests.helpers import on_server

pytestmark = pytest.mark.browser


def _claim_and(item_id: int, then, **kwargs):
    item = outbox.claim(item_id=item_id)
    assert item is not None
    return then(item=item, **kwargs)


def test_reply_marks_follow_the_platform_and_resend_requeues(browser, live_asgi, operator, channel):
    # Actions publish after commit through the live server's loop (see on_server).
    chat = on_server(live_asgi, lambda: consented(with_telegram(channel)).conversation)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    login(page, live_asgi.url, "otto")
    page.goto(f"{live_asgi.url}/console/inbox/{chat.pk}/")
    page.locator("#live-state.on").wait_for()
    expect(page.locator(".chat-face")).to_have_text("Telegram")

    page.get_by_label("Reply").fill("Доставка завтра")
    page.keyboard.press("Enter")
    reply = page.locator(".chat-msg.chat-operator", has_text="Доставка завтра")
    expect(reply.locator(".chat-delivery")).to_have_text("Queued")

    item = on_server(live_asgi, lambda: OutboxItem.objects.get(message__text="Доставка завтра"))
    on_server(
        live_asgi,
        _claim_and,
        item_id=item.pk,
        then=outbox.record_failure,
        error="Forbidden: bot was blocked by the user",
        permanent=True,
        retry_after=None,
    )
    expect(reply.locator(".chat-delivery")).to_contain_text(
        "Not delivered: Forbidden: bot was blocked by the user"
    )

    screenshot(page, "messenger-reply-not-delivered")
    reply.get_by_role("button", name="Resend").click()
    expect(page.locator(".flash")).to_contain_text("queued to be sent again")
    reply = page.locator(".chat-msg.chat-operator", has_text="Доставка завтра")
    expect(reply.locator(".chat-delivery")).to_have_text("Queued")

    page.locator("#live-state.on").wait_for()
    again = on_server(
        live_asgi, lambda: OutboxItem.objects.filter(message_id=item.message_id).latest("id")
    )
    on_server(
        live_asgi, _claim_and, item_id=again.pk, then=outbox.record_sent, platform_message_id="991"
    )
    expect(reply.locator(".chat-delivery")).to_have_text("Sent")
    on_server(
        live_asgi,
        inbound.record_delivery,
        channel=channel,
        kind=KIND,
        platform_message_id="991",
        state="read",
    )
    expect(reply.locator(".chat-delivery")).to_have_text("Read")
    context.close()
