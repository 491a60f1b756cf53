"""The operator's daily tools in a real browser: canned replies by keyboard, private notes,
the Close and Transfer buttons, the client sidebar at 1366 and 390 px.

Screenshots go to var/screenshots/inbox/ (git-ignored) to be looked at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from openline.conftest import login
from openline.conversations import actions, canned
from openline.conversations.models import Conversation, ConversationNote, Message
from openline.livechat.tests.helpers import consented_visitor, on_server

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots" / "inbox"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
PENDING = re.compile(r"\bpending\b")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def tab(browser, live_asgi, user: str, viewport=DESKTOP):
    context = browser.new_context(viewport=viewport, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    login(page, live_asgi.url, user)
    return page


@pytest.fixture
def chat(live_asgi, channel, operator, administrator):
    started, _ = on_server(
        live_asgi, consented_visitor, channel=channel, text="Hi, where is my parcel 4711?"
    )
    canned.create_canned_reply(
        actor=operator,
        title="Parcel on its way",
        shortcut="parcel",
        text="Your parcel left our warehouse today.",
    )
    canned.create_canned_reply(
        actor=administrator,
        title="Opening hours",
        shortcut="hours",
        text="We answer from 9 to 18.",
        shared=True,
    )
    canned.create_canned_reply(
        actor=administrator,
        title="Goodbye",
        shortcut="bye",
        text="Thanks for writing, have a nice day!",
        shared=True,
    )
    return started.conversation


def open_chat(page, live_asgi, chat):
    page.goto(f"{live_asgi.url}/console/inbox/{chat.pk}/")
    page.locator("#live-state.on").wait_for(state="attached")


def test_canned_reply_by_keyboard_only(browser, live_asgi, chat):
    page = tab(browser, live_asgi, "otto")
    open_chat(page, live_asgi, chat)
    box = page.get_by_role("combobox", name="Reply")
    box.focus()
    listbox = page.get_by_role("listbox", name="Canned replies")
    page.keyboard.type("/")
    expect(listbox).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    # Own replies first, then the shared ones.
    expect(listbox.get_by_role("option")).to_have_count(3)
    page.keyboard.type("h")
    expect(listbox.get_by_role("option")).to_have_count(1)
    expect(listbox.get_by_role("option").first).to_contain_text("/hours")
    page.keyboard.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_attribute("aria-expanded", "false")
    expect(box).to_have_value("/h")
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.type("Hello! /")
    expect(listbox.get_by_role("option")).to_have_count(3)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    selected = listbox.locator('[aria-selected="true"]')
    expect(selected).to_contain_text("/hours")
    active_id = selected.get_attribute("id")
    expect(box).to_have_attribute("aria-activedescendant", active_id)
    page.keyboard.press("ArrowUp")
    expect(selected).to_contain_text("/bye")
    page.keyboard.press("Tab")
    expect(box).to_have_value("Hello! Thanks for writing, have a nice day!")
    expect(listbox).to_be_hidden()
    # Enter with the list open inserts; the operator edits, then Enter sends.
    page.keyboard.type(" /parc")
    expect(listbox.get_by_role("option")).to_have_count(1)
    shot(page, "canned-suggestions-1366")
    page.keyboard.press("Enter")
    expect(box).to_have_value(
        "Hello! Thanks for writing, have a nice day! Your parcel left our warehouse today."
    )
    page.keyboard.type(" Tracking follows.")
    page.keyboard.press("Enter")
    expected = (
        "Hello! Thanks for writing, have a nice day! Your parcel left our warehouse today. "
        "Tracking follows."
    )
    expect(page.locator("#chat-log .chat-operator .chat-bubble").last).to_have_text(expected)
    expect(page.locator("#chat-log .chat-operator").last).not_to_have_class(PENDING)
    assert Message.objects.filter(conversation=chat, sender="operator").get().text == expected
    page.context.close()


def test_private_note_in_the_browser(browser, live_asgi, chat, administrator):
    page = tab(browser, live_asgi, "otto")
    open_chat(page, live_asgi, chat)
    admin = tab(browser, live_asgi, "ada")
    open_chat(admin, live_asgi, chat)
    note_tab = page.get_by_role("tab", name="Private note")
    note_tab.focus()
    page.keyboard.press("Enter")
    expect(note_tab).to_have_attribute("aria-selected", "true")
    expect(page.locator("#compose-hint")).to_have_text("Private note — the client never sees this")
    expect(page.locator("#chat-reply")).to_have_class("chat-reply mode-note")
    box = page.get_by_role("combobox", name="Private note")
    box.fill("<b>VIP</b> client, be extra kind")
    box.press("Enter")
    note = page.locator("#chat-log .chat-note-item").last
    expect(note.locator(".chat-bubble")).to_have_text("<b>VIP</b> client, be extra kind")
    expect(note).not_to_have_class(PENDING)
    # Another operator's open chat gets it live.
    expect(admin.locator("#chat-log .chat-note-item .chat-bubble")).to_have_text(
        "<b>VIP</b> client, be extra kind"
    )
    shot(page, "note-1366")
    assert ConversationNote.objects.get().text == "<b>VIP</b> client, be extra kind"
    assert not Message.objects.filter(text__contains="VIP").exists()
    # Back to replies with the arrow keys.
    note_tab.focus()
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("tab", name="Reply")).to_have_attribute("aria-selected", "true")
    page.context.close()
    admin.context.close()


def test_transfer_and_close_buttons(browser, live_asgi, chat, channel, other_operator, operator):
    channel.operators.add(other_operator)
    on_server(live_asgi, actions.send_reply, conversation=chat, actor=operator, text="On it")
    page = tab(browser, live_asgi, "otto")
    open_chat(page, live_asgi, chat)
    page.get_by_role("button", name="Transfer", exact=True).click()
    dialog = page.get_by_role("dialog", name="Transfer to another operator")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Operator")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Transfer", exact=True).focus()
    page.keyboard.press("Enter")
    dialog.get_by_label("Operator").select_option(label="Olivia Operator")
    dialog.get_by_role("button", name="Transfer").click()
    expect(page.locator(".flash-success")).to_have_text(
        "Conversation transferred to Olivia Operator."
    )
    assert Conversation.objects.get(pk=chat.pk).assignee == other_operator
    page.get_by_role("button", name="Close", exact=True).click()
    confirm = page.get_by_role("dialog", name="Close conversation")
    expect(confirm).to_be_visible()
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    shot(page, "close-confirm-1366")
    page.keyboard.press("Enter")  # Cancel has the focus: nothing happens
    expect(confirm).to_be_hidden()
    assert Conversation.objects.get(pk=chat.pk).status != "closed"
    page.get_by_role("button", name="Close", exact=True).click()
    confirm.get_by_role("button", name="Close conversation").click()
    expect(page.locator(".flash-success")).to_have_text("Conversation closed.")
    assert Conversation.objects.get(pk=chat.pk).status == "closed"
    # A closed chat still takes private notes.
    expect(page.get_by_role("tab", name="Private note")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("button", name="Close", exact=True)).to_have_count(0)
    page.context.close()


def test_sidebar_and_layout_at_1366_and_390(browser, live_asgi, chat, operator):
    on_server(
        live_asgi, actions.add_note, conversation=chat, actor=operator, text="Called them once"
    )
    page = tab(browser, live_asgi, "otto")
    open_chat(page, live_asgi, chat)
    panel = page.locator("#client-panel")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("Consent given · v1")
    expect(panel.get_by_role("link", name="https://shop.example/pricing")).to_be_visible()
    expect(page.get_by_role("button", name="Client")).to_be_hidden()
    shot(page, "chat-1366")
    page.goto(f"{live_asgi.url}/console/inbox/?q=4711")
    expect(page.locator(".conv-snippet mark")).to_have_text("4711")
    shot(page, "search-1366")
    page.get_by_role("link", name="Canned replies").click()
    expect(page.get_by_role("heading", name="Canned replies")).to_be_visible()
    shot(page, "canned-page-1366")
    page.get_by_role("link", name="Add reply").click()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Give the reply a title.")).to_be_visible()
    expect(page.get_by_label("Title")).to_have_attribute("aria-invalid", "true")
    shot(page, "canned-form-errors-1366")
    page.context.close()

    phone = tab(browser, live_asgi, "otto", viewport=PHONE)
    open_chat(phone, live_asgi, chat)
    panel = phone.locator("#client-panel")
    toggle = phone.get_by_role("button", name="Client")
    expect(panel).to_be_hidden()
    shot(phone, "chat-390")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("Consent given · v1")
    shot(phone, "chat-sidebar-390")
    toggle.click()
    expect(panel).to_be_hidden()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at 390 px ({width} px)"
    phone.get_by_role("combobox", name="Reply").focus()
    phone.keyboard.type("/")
    expect(phone.get_by_role("listbox", name="Canned replies")).to_be_visible()
    shot(phone, "canned-390")
    phone.goto(f"{live_asgi.url}/console/canned-replies/")
    shot(phone, "canned-page-390")
    phone.goto(f"{live_asgi.url}/console/inbox/")
    phone.get_by_role("searchbox", name="Search conversations").fill("parcel")
    phone.keyboard.press("Enter")
    expect(phone.locator(".conv-snippet mark")).to_have_text("parcel")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "search-390")
    phone.context.close()
