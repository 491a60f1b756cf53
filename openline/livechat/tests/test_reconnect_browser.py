"""The server dies under a real browser: the chat and the inbox say so, then catch up, nothing lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from openline.conftest import login, screenshot
from openline.conversations import actions
from openline.conversations.models import Message
from openline.livechat.tests.helpers import consented_visitor
from openline.testing.server_process import current_database_url, start_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def in_thread(fn, **kwargs):
    """Run a write path in a thread of its own: Playwright keeps an event loop in this one,
    where publishing events after commit (async_to_sync) cannot run."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, **kwargs).result(30)


def test_chat_and_inbox_show_reconnecting_and_catch_up_after_a_restart(
    browser, channel, operator, tmp_path
):
    started, token = in_thread(consented_visitor, channel=channel, text="Is my order on its way?")
    conversation = started.conversation
    database_url = current_database_url()
    server = start_server(database_url=database_url, var_dir=tmp_path)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        # The client's chat (the widget's frame page, holding the client's signed token).
        visitor = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
        visitor.set_default_timeout(10_000)
        chat = visitor.new_page()
        chat.goto(f"{server.url}/widget/{channel.code}/frame")
        chat.evaluate(
            "([key, token]) => localStorage.setItem(key, JSON.stringify({ token: token }))",
            [f"openline:{channel.code}", token],
        )
        chat.reload()
        chat.locator(".ol-me").filter(has_text="Is my order on its way?").wait_for()
        status = chat.locator("#ol-status")
        expect(status).to_be_hidden()

        # The operator's inbox on the same server, showing this conversation.
        staff = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
        staff.set_default_timeout(10_000)
        inbox = staff.new_page()
        login(inbox, server.url, "otto")
        inbox.goto(f"{server.url}/console/inbox/{conversation.pk}/")
        expect(inbox.locator("#live-state")).to_have_text("live")

        server.process.kill()  # no goodbye: the sockets just drop, as in a crash
        server.process.wait()
        expect(status).to_have_text("Reconnecting…")
        expect(status).to_be_visible()
        banner = inbox.locator("#reconnecting")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Reconnecting…")
        screenshot(chat, "reconnecting-widget-1366", full_page=False)
        chat.set_viewport_size({"width": 390, "height": 844})
        screenshot(chat, "reconnecting-widget-390", full_page=False)
        screenshot(inbox, "reconnecting-inbox-1366", full_page=False)

        # Meanwhile the operator answers (stored by another process) and the client writes.
        in_thread(
            actions.send_reply,
            conversation=conversation,
            actor=operator,
            text="Yes, it ships tomorrow.",
        )
        box = chat.get_by_label("Write a message…")
        box.fill("Thanks! Written while offline.")
        box.press("Enter")

        server = start_server(database_url=database_url, var_dir=tmp_path, port=port)
        # The back-off waits at most 1 s, 2 s, 4 s, 8 s … before each attempt.
        expect(status).to_be_hidden(timeout=40_000)
        chat.locator(".ol-op").filter(has_text="Yes, it ships tomorrow.").wait_for()
        chat.locator(".ol-me:not(.ol-pending)").filter(
            has_text="Thanks! Written while offline."
        ).wait_for()
        expect(banner).to_be_hidden(timeout=40_000)
        inbox.locator("#chat-log").get_by_text("Thanks! Written while offline.").wait_for()
        screenshot(chat, "reconnected-widget-390", full_page=False)
        # Stored once, although the widget resent it on reconnect.
        texts = list(
            Message.objects.filter(conversation=conversation)
            .order_by("id")
            .values_list("sender", "text")
        )
        assert texts == [
            ("visitor", "Is my order on its way?"),
            ("operator", "Yes, it ships tomorrow."),
            ("visitor", "Thanks! Written while offline."),
        ]
        visitor.close()
        staff.close()
    finally:
        server.stop()
