"""The first run, end to end: ``serve`` as a real process, its demo website in a real browser.

As after ``make run``: a fresh SQLite database, ``migrate``, ``load_demo``, then ``serve`` on free
ports. The browser opens the demo website URL serve printed, chats, accepts the consent, goes to
the shop's second page (the same client, the same chat), and the operator, signed in with the
printed demo login, finds the chat in the inbox.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from openline.core.tests.serve_run import ServeRun, prepared

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots" / "demo"
QUESTION = "Hello! Is the Harbour Blend good for a moka pot?"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    run = ServeRun(prepared(tmp_path_factory.mktemp("first-run")))
    run.load_demo()
    run.start()
    yield run
    run.cleanup()


def rows(run: ServeRun, sql: str) -> list[tuple]:
    with sqlite3.connect(run.database) as db:
        return db.execute(sql).fetchall()


def open_chat(page):
    page.get_by_role("button", name="Chat with us").click()
    frame = page.frame_locator("iframe[title='Chat with us']")
    frame.get_by_label("Write a message…").wait_for()
    return frame


def test_the_printed_demo_website_chats_with_the_operator_inbox(browser, first_run):
    run = first_run
    demo_url = run.demo_url
    assert demo_url == f"http://127.0.0.1:{run.demo_port}/"
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(demo_url)
    page.get_by_role("heading", name="Small-batch coffee, roasted on Mondays").wait_for()
    shot(page, "demo-shop-1366")

    frame = open_chat(page)
    box = frame.get_by_label("Write a message…")
    box.fill(QUESTION)
    box.press("Enter")
    frame.get_by_role("button", name="I accept").click()
    frame.locator(".ol-me .ol-meta").filter(has_text=re.compile("Sent|Delivered|Read")).wait_for()
    shot(page, "demo-shop-chat-1366")
    # The proof landed in the registry of serve's own database.
    assert rows(run, "SELECT state, method, address, ip FROM consent_consentrecord") == [
        ("given", "clicked_accept", demo_url, "127.0.0.1")
    ]
    assert rows(run, "SELECT text FROM conversations_message") == [(QUESTION,)]

    # The second page of the shop: the same client, the chat still there.
    page.get_by_role("navigation", name="Shop").get_by_role(
        "link", name="Delivery & returns"
    ).click()
    page.get_by_role("heading", name="Delivery & returns").wait_for()
    frame = open_chat(page)
    frame.locator(".ol-me .ol-bubble").filter(has_text=QUESTION).wait_for()
    shot(page, "demo-delivery-chat-1366")
    assert rows(run, "SELECT count(*) FROM conversations_visitor") == [(1,)]

    operator_context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    operator_context.set_default_timeout(15_000)
    operator = operator_context.new_page()
    console = run.console_url.removesuffix("/console/")
    operator.goto(f"{console}/login/")
    operator.get_by_label("Username").fill("operator")
    operator.get_by_label("Password").fill(run.logins()["operator"])
    operator.get_by_role("button", name="Log in").click()
    operator.wait_for_url(lambda url: "/login/" not in url)
    operator.get_by_role("link", name="Inbox").first.click()
    row = operator.locator(".conv-row").filter(has_text=QUESTION)
    row.wait_for()
    row.click()
    # The reply goes out once the inbox is live (Enter before its script runs types a newline).
    operator.locator("#live-state.on").wait_for()
    operator.get_by_label("Reply").fill("Yes, grind it a little finer than for filter.")
    operator.get_by_label("Reply").press("Enter")
    frame.locator(".ol-op .ol-bubble").filter(has_text="grind it a little finer").wait_for()
    shot(operator, "demo-operator-inbox-1366")
    shot(page, "demo-delivery-reply-1366")
    assert errors == []
    operator_context.close()
    context.close()


def test_the_demo_website_on_a_phone(browser, first_run):
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(first_run.demo_url)
    page.get_by_role("heading", name="Small-batch coffee, roasted on Mondays").wait_for()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the shop page scrolls sideways ({width}px)"
    shot(page, "demo-shop-390")
    page.goto(first_run.demo_url + "delivery/")
    page.get_by_role("heading", name="Delivery & returns").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "demo-delivery-390")
    frame = open_chat(page)
    frame.get_by_label("Write a message…").wait_for()
    shot(page, "demo-chat-390")
    context.close()
