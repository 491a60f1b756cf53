"""The consent gate and menu as a client uses them, in headless chromium on another website."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Message
from openline.livechat.tests.helpers import (
    FRAME,
    new_context,
    on_server,
    open_chat,
    sent,
    shot,
    write,
)

pytestmark = pytest.mark.browser

PARAGRAPHS = [
    f"Section {n}. We keep your messages, your name and your IP address to answer you "
    "and to prove what you agreed to; you can ask us for a copy or for deletion at any time."
    for n in range(1, 15)
] + ["Last section: contact privacy@example.com with any question."]


def accept_first(frame, text="Hello"):
    write(frame, text)
    frame.get_by_role("button", name="I accept").click()
    sent(frame, text)


def publish(live_asgi, administrator, channel, text):
    from openline.consent.services import update_agreement

    return on_server(
        live_asgi,
        update_agreement,
        actor=administrator,
        agreement=channel.agreement,
        texts={"en": text},
    )


def test_long_text_scrolls_with_a_cue_and_links_to_its_public_page(
    browser, live_asgi, host_site, channel, administrator
):
    publish(live_asgi, administrator, channel, "\n\n".join(PARAGRAPHS))
    context = new_context(browser)
    page = context.new_page()
    frame = open_chat(page, host_site.url)
    write(frame, "Is my data safe?")
    text = frame.locator("#ol-gate-text")
    text.get_by_text("Section 1.").wait_for()
    cue = frame.get_by_role("button", name="Scroll to read all")
    expect(cue).to_be_visible()
    expect(text).to_have_class(re.compile("ol-fade"))
    shot(page, "gate-long-text-1366")
    # The whole text is there, in a box the client scrolls; the cue goes at the end.
    assert "Last section" in text.inner_text()
    cue.click()
    text.evaluate("box => box.scrollTo(0, box.scrollHeight)")
    expect(cue).to_be_hidden()
    expect(text).not_to_have_class(re.compile("ol-fade"))
    link = frame.get_by_role("link", name="Read the full text")
    assert link.get_attribute("target") == "_blank"
    assert "noopener" in link.get_attribute("rel")
    version = channel.agreement.versions.order_by("-number").first()
    assert link.get_attribute("href") == (f"{live_asgi.url}/c/{version.public_code}/?lang=en")
    with context.expect_page() as opened:
        link.click()
    public = opened.value
    public.wait_for_load_state()
    expect(public.get_by_text(f"Version {version.number}")).to_be_visible()
    expect(public.get_by_text("Last section: contact privacy@example.com")).to_be_visible()
    assert public.evaluate("window.opener") is None
    context.close()

    # The same gate on a phone.
    context = new_context(browser, 390, 844)
    page = context.new_page()
    frame = open_chat(page, host_site.url)
    write(frame, "Is my data safe?")
    expect(frame.get_by_role("button", name="Scroll to read all")).to_be_visible()
    shot(page, "gate-long-text-390")
    context.close()


def test_a_returning_client_is_told_the_text_changed_since_they_agreed(
    browser, live_asgi, host_site, channel, administrator, operator
):
    from openline.conversations import actions

    context = new_context(browser)
    page = context.new_page()
    frame = open_chat(page, host_site.url)
    write(frame, "first visit")
    # A first-time client is not told about changes.
    expect(frame.locator("#ol-gate-intro")).to_be_visible()
    expect(frame.get_by_text("The text has changed since you last agreed.")).to_be_hidden()
    frame.get_by_role("button", name="I accept").click()
    sent(frame, "first visit")
    on_server(
        live_asgi,
        actions.close_conversation,
        conversation=Conversation.objects.get(),
        actor=operator,
    )
    publish(live_asgi, administrator, channel, "Version two: we also keep transcripts for a year.")

    frame = open_chat(page, host_site.url)
    frame.locator(".ol-bubble").filter(has_text="first visit").wait_for()
    write(frame, "second visit")
    frame.locator("#ol-gate").get_by_text("Version two").wait_for()
    expect(frame.get_by_text("The text has changed since you last agreed.")).to_be_visible()
    shot(page, "gate-text-changed-1366")
    frame.get_by_role("button", name="I accept").click()
    sent(frame, "second visit")
    assert list(ConsentRecord.objects.order_by("id").values_list("version__number", flat=True)) == [
        1,
        2,
    ]
    context.close()


def test_declining_puts_the_message_back_into_the_box(browser, host_site, channel):
    context = new_context(browser)
    page = context.new_page()
    frame = open_chat(page, host_site.url)
    write(frame, "What does shipping cost?")
    frame.get_by_role("button", name="I decline").click()
    box = frame.get_by_label("Write a message…")
    expect(box).to_have_value("What does shipping cost?")
    expect(box).to_be_focused()
    frame.get_by_text("Your message was not sent").wait_for()
    assert frame.locator(".ol-me").count() == 0
    shot(page, "declined-text-back-1366")
    # Sent again from the box, the gate comes back with the same text waiting.
    box.press("Enter")
    frame.locator(".ol-waiting").filter(has_text="What does shipping cost?").wait_for()
    assert ConsentRecord.objects.count() == 0 and Message.objects.count() == 0
    context.close()


def test_withdrawal_is_confirmed_once_then_one_notice_and_no_menu(browser, host_site, channel):
    context = new_context(browser)
    page = context.new_page()
    frame = open_chat(page, host_site.url)
    accept_first(frame)
    menu = frame.get_by_role("button", name="Menu")
    menu.click()
    frame.get_by_role("menuitem", name="Withdraw consent").click()
    dialog = frame.get_by_role("alertdialog", name="Withdraw your consent?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    shot(page, "withdraw-confirm-1366")
    # Escape keeps the consent.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert ConsentRecord.objects.count() == 1
    # With the keyboard only: open the menu, pick withdraw, confirm.
    menu.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(frame.get_by_role("menuitem", name="Withdraw consent")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.keyboard.press("Shift+Tab")
    expect(dialog.get_by_role("button", name="Withdraw consent")).to_be_focused()
    page.keyboard.press("Enter")
    frame.get_by_text("You withdrew your consent").wait_for()
    page.wait_for_timeout(800)
    notes = frame.locator(".ol-note").all_inner_texts()
    assert len(notes) == 1 and notes[0].startswith("You withdrew your consent"), notes
    expect(menu).to_be_hidden()
    expect(dialog).to_be_hidden()
    assert [r.state for r in ConsentRecord.objects.order_by("id")] == ["given", "withdrawn"]
    assert Conversation.objects.get().status == "closed"
    shot(page, "withdrawn-1366")
    context.close()


def test_menu_stays_when_a_new_version_is_published_during_the_chat(
    browser, live_asgi, host_site, channel, administrator
):
    context = new_context(browser)
    page = context.new_page()
    frame = open_chat(page, host_site.url)
    accept_first(frame, "Hello before the change")
    record = ConsentRecord.objects.get()
    publish(live_asgi, administrator, channel, "Version two of the privacy notice.")
    menu = frame.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    # The open chat goes on without a new gate; after a reload the menu is still there.
    write(frame, "still chatting")
    sent(frame, "still chatting")
    page.reload()
    page.get_by_role("button", name="Chat with us").click()
    frame = page.frame_locator(FRAME)
    frame.locator(".ol-bubble").filter(has_text="still chatting").wait_for()
    menu = frame.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    menu.click()
    with page.expect_download() as download:
        frame.get_by_role("menuitem", name="Download consent receipt").click()
    receipt = json.loads(Path(download.value.path()).read_text())
    assert str(record.uuid) in json.dumps(receipt)
    assert record.version.number == 1
    expect(frame.locator("#ol-gate")).to_be_hidden()
    context.close()
