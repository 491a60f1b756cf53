"""The inbox page reacts to the socket's close codes in a real browser.

4401 (signed out): the page reloads, so a signed-out operator lands on the login page instead
of a dead "offline" inbox. 4403 (no access): the page says so and stops reconnecting.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from openline.accounts.services import update_staff_user
from openline.conftest import login
from openline.livechat.tests.helpers import on_server

pytestmark = pytest.mark.browser


def operator_tab(browser, live_asgi):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    login(page, live_asgi.url, "otto")
    page.goto(f"{live_asgi.url}/console/inbox/")
    page.locator("#live-state.on").wait_for()
    return page


def test_inbox_goes_to_the_login_page_after_a_logout_in_another_tab(
    browser, live_asgi, operator, channel
):
    inbox = operator_tab(browser, live_asgi)
    other_tab = inbox.context.new_page()  # same browser profile: the same session cookie
    # A page without a socket of its own (the console home leads operators to the inbox).
    other_tab.goto(f"{live_asgi.url}/console/profile/")
    other_tab.get_by_role("button", name="Log out").click()
    other_tab.wait_for_url(lambda url: "/login/" in url)
    # Without any click in the inbox tab: its socket closed 4401 and the page reloaded.
    inbox.wait_for_url(f"{live_asgi.url}/login/?next=/console/inbox/")
    expect(inbox.get_by_label("Username")).to_be_visible()
    inbox.context.close()


def test_inbox_says_access_is_gone_and_stops_reconnecting(browser, live_asgi, operator, channel):
    inbox = operator_tab(browser, live_asgi)
    sockets: list = []
    inbox.on("websocket", lambda ws: sockets.append(ws.url))
    on_server(
        live_asgi,
        update_staff_user,
        user=operator,
        role=operator.role,
        display_name=operator.display_name,
        email=operator.email,
        is_active=False,
    )
    alert = inbox.locator("#no-access")
    expect(alert).to_have_text(
        "You no longer have access to the inbox. Ask an administrator, or sign in again."
    )
    expect(inbox.locator("#live-state")).to_have_text("no access")
    inbox.wait_for_timeout(3000)  # the old page retried within a second
    assert sockets == []
    assert inbox.url == f"{live_asgi.url}/console/inbox/"
    inbox.context.close()
