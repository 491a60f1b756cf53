"""A returning client on the company's website, in a browser that blocks third-party storage.

The chat iframe (Openline, 127.0.0.1) cannot keep anything in the website's page (127.0.0.2):
the loader keeps the client's handle in the website's own storage and hands it to the iframe.
"""

from __future__ import annotations

import re

import pytest

from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Message, Visitor
from openline.livechat.tests.helpers import (
    FRAME,
    STORAGE_PROBE,
    new_context,
    on_server,
    open_chat,
    sent,
    shot,
    widget_frame,
    write,
)

pytestmark = pytest.mark.browser


def test_returning_visitor_on_another_page_of_the_site_keeps_the_chat(
    browser, live_asgi, host_site, channel, operator
):
    from openline.conversations import actions

    context = new_context(browser)
    page = context.new_page()
    frame = open_chat(page, host_site.url)
    # The browser really refuses the chat iframe any storage of its own.
    assert widget_frame(page).evaluate(STORAGE_PROBE) is False
    write(frame, "Do you have the blue one in stock?")
    frame.get_by_role("button", name="I accept").click()
    sent(frame, "Do you have the blue one in stock?")
    visitor = Visitor.objects.get()
    key = f"openline:{channel.code}"
    assert page.evaluate("k => localStorage.getItem(k)", key)
    page.close()

    # The operator answers while the website is closed.
    on_server(
        live_asgi,
        actions.send_reply,
        conversation=Conversation.objects.get(),
        actor=operator,
        text="Yes, two left in size M.",
    )

    # Later, another page of the same website: same client, same chat, the answer is there.
    page = context.new_page()
    frame = open_chat(page, f"{host_site.origin}/contact")
    frame.locator(".ol-op .ol-bubble").filter(has_text="Yes, two left in size M.").wait_for()
    write(frame, "Great, I'll order today.")
    sent(frame, "Great, I'll order today.")
    assert frame.locator("#ol-gate").is_hidden()
    shot(page, "returning-visitor-1366")

    # A reload: still the same client, no second consent, no second chat.
    page.reload()
    page.get_by_role("button", name="Chat with us").click()
    frame = page.frame_locator(FRAME)
    frame.locator(".ol-bubble").filter(has_text="Great, I'll order today.").wait_for()
    assert widget_frame(page).evaluate(STORAGE_PROBE) is False
    assert Visitor.objects.get() == visitor
    assert ConsentRecord.objects.count() == 1
    assert Conversation.objects.count() == 1
    assert list(
        Message.objects.filter(conversation__visitor=visitor).values_list("text", flat=True)
    ) == [
        "Do you have the blue one in stock?",
        "Yes, two left in size M.",
        "Great, I'll order today.",
    ]
    context.close()


def test_a_client_who_writes_at_once_waits_for_the_handle_and_is_not_asked_again(
    browser, live_asgi, host_site, channel
):
    """The website hands the handle over slowly; the client has already typed and sent."""
    context = new_context(browser)
    page = context.new_page()
    frame = open_chat(page, host_site.url)
    write(frame, "first message")
    frame.get_by_role("button", name="I accept").click()
    sent(frame, "first message")
    page.close()

    original = 'post({ openline: "hello", url: location.href, handle: handle() })'
    delayed = 'setTimeout(post, 1500, { openline: "hello", url: location.href, handle: handle() })'

    def slow_loader(route):
        response = route.fetch()
        body = response.text()
        assert original in body
        route.fulfill(response=response, body=body.replace(original, delayed))

    page = context.new_page()
    page.route(re.compile(r".*/widget/[^/]+\.js$"), slow_loader)
    frame = open_chat(page, f"{host_site.origin}/faq")
    widget_frame(page).wait_for_function("() => document.readyState === 'complete'")
    gate_seen = []
    # Typed and sent before the handle arrived.
    write(frame, "written at once")
    for _ in range(10):
        gate_seen.append(frame.locator("#ol-gate").is_visible())
        page.wait_for_timeout(150)
    sent(frame, "written at once")
    assert not any(gate_seen)
    assert ConsentRecord.objects.count() == 1 and Visitor.objects.count() == 1
    assert Conversation.objects.count() == 1
    assert Message.objects.filter(text="written at once").count() == 1
    context.close()


def test_a_forgotten_handle_on_the_website_makes_a_new_client(browser, live_asgi, host_site):
    """Without the website's copy the client is new: asked for consent, nothing reused."""
    context = new_context(browser)
    page = context.new_page()
    frame = open_chat(page, host_site.url)
    write(frame, "hello")
    with page.expect_websocket() as opened:
        frame.get_by_role("button", name="I accept").click()
    # The connection's fresh token is handed to the website too: wait for it, then forget it.
    opened.value.wait_for_event("framereceived", lambda payload: '"ready"' in payload)
    sent(frame, "hello")
    page.wait_for_timeout(200)
    page.evaluate("() => localStorage.clear()")
    frame = open_chat(page, host_site.url)
    write(frame, "hello again")
    frame.get_by_role("button", name="I accept").wait_for()
    assert Visitor.objects.count() == 1
    context.close()
