"""The widget embedded on another origin, driven in headless chromium, with an operator in the console."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from openline.conftest import login, screenshot
from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Message, Visitor
from openline.livechat.tests.conftest import nothing_stored
from openline.livechat.tests.helpers import on_server

pytestmark = pytest.mark.browser

SECRET = "my secret question about order 4711"


def open_widget(page, host_site):
    page.goto(host_site.url)
    page.get_by_role("button", name="Chat with us").click()
    frame = page.frame_locator("iframe[title='Chat with us']")
    frame.get_by_label("Write a message…").wait_for()
    return frame


def write(frame, text):
    box = frame.get_by_label("Write a message…")
    box.fill(text)
    box.press("Enter")


def visitor_context(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 760}, locale="en-US")
    context.set_default_timeout(10_000)
    return context


def operator_page(browser, live_asgi, username="otto"):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    login(page, live_asgi.url, username)
    return page


def test_accept_flow_records_consent_and_the_chat_reaches_the_operator(
    browser, live_asgi, host_site, channel
):
    context = visitor_context(browser)
    page = context.new_page()
    frame = open_widget(page, host_site)
    write(frame, "Hello, do you ship to Austria?")
    gate = frame.locator("#ol-gate")
    gate.get_by_text("We process your name, messages and IP address").wait_for()
    assert frame.get_by_role("button", name="I accept").is_visible()
    assert frame.get_by_role("button", name="I decline").is_visible()
    screenshot(page, "widget-consent-gate", full_page=False)
    # The message waits in the browser until the client answers.
    assert nothing_stored() == {"visitors": 0, "conversations": 0, "messages": 0}

    frame.get_by_role("button", name="I accept").click()
    frame.locator(".ol-me .ol-meta").filter(has_text=re.compile("Sent|Delivered|Read")).wait_for()
    record = ConsentRecord.objects.get()
    assert (
        record.state == "given"
        and record.method == "clicked_accept"
        and record.origin == "livechat"
    )
    assert record.source_type == "website" and record.source_label == "127.0.0.2"
    assert record.address == host_site.url
    assert record.ip == "127.0.0.1"
    assert "Chrome" in record.user_agent
    assert record.version == channel.agreement.current_version
    assert record.text_sha256 == channel.agreement.current_version.texts.get().sha256
    conversation = Conversation.objects.get()
    assert record.conversation == conversation and conversation.page_url == host_site.url
    assert [m.text for m in Message.objects.all()] == ["Hello, do you ship to Austria?"]

    operator = operator_page(browser, live_asgi)
    operator.get_by_role("link", name="Inbox").click()
    row = operator.locator(".conv-row").filter(has_text="Hello, do you ship to Austria?")
    row.wait_for()
    row.click()
    operator.get_by_text("Consent given · v1").wait_for()
    assert operator.locator("#client-panel").get_by_role("link", name="Wording").get_attribute(
        "href"
    ) == (f"/c/{record.version.public_code}/")
    operator.locator("#live-state.on").wait_for()
    # Visitor typing shows in the console; operator typing shows in the widget.
    frame.get_by_label("Write a message…").type("and")
    operator.get_by_text("The client is typing…").wait_for()
    operator.get_by_label("Reply").type("Yes, we do")
    frame.get_by_text("Otto Operator is typing…").wait_for()
    operator.get_by_label("Reply").press("Shift+Enter")
    operator.get_by_label("Reply").type("— within 3 days.")
    operator.get_by_label("Reply").press("Enter")
    frame.locator(".ol-op .ol-bubble").filter(has_text="Yes, we do").wait_for()
    reply = Message.objects.get(sender="operator")
    assert reply.text == "Yes, we do\n— within 3 days."
    # The widget is open and visible, so the reply is marked read, and the console shows it.
    operator.locator(".chat-operator .chat-mark").filter(has_text="Read").wait_for()
    frame.get_by_label("Write a message…").fill("Great, thanks!")
    frame.get_by_label("Write a message…").press("Enter")
    operator.locator(".chat-visitor .chat-bubble").filter(has_text="Great, thanks!").wait_for()
    screenshot(page, "widget-chat", full_page=False)
    screenshot(operator, "console-operator-workspace", full_page=False)
    assert operator.js_errors == []
    context.close()
    operator.context.close()


def test_decline_stores_nothing_and_sends_nothing(browser, host_site, channel):
    context = visitor_context(browser)
    page = context.new_page()
    requests: list[str] = []
    sockets: list[str] = []

    def on_request(request):
        requests.append(f"{request.method} {request.url} {request.post_data or ''}")

    page.on("request", on_request)
    page.on("websocket", lambda ws: sockets.append(ws.url))
    frame = open_widget(page, host_site)
    before = len(requests)
    write(frame, SECRET)
    frame.get_by_role("button", name="I decline").click()
    frame.get_by_text("Your message was not sent").wait_for()
    screenshot(page, "widget-declined", full_page=False)
    # Trying again shows the gate again; declining again still sends nothing.
    write(frame, SECRET + " (second try)")
    frame.get_by_role("button", name="I decline").wait_for()
    frame.get_by_role("button", name="I decline").click()
    page.wait_for_timeout(300)
    assert requests[before:] == [], requests[before:]
    assert not any(SECRET in r or "4711" in r for r in requests)
    assert sockets == []
    assert nothing_stored() == {"visitors": 0, "conversations": 0, "messages": 0}
    assert ConsentRecord.objects.count() == 0
    context.close()


def test_client_html_runs_no_script_in_the_widget_or_the_console(
    browser, live_asgi, host_site, channel
):
    payload = "<img src=x onerror=\"window.top.__pwned=1;document.title='pwned'\"><script>window.__pwned=2</script>"
    context = visitor_context(browser)
    page = context.new_page()
    frame = open_widget(page, host_site)
    write(frame, payload)
    frame.get_by_role("button", name="I accept").click()
    frame.locator(".ol-me .ol-meta").filter(has_text=re.compile("Sent|Delivered|Read")).wait_for()
    operator = operator_page(browser, live_asgi)
    operator.goto(f"{live_asgi.url}/console/inbox/")
    operator.locator(".conv-row").first.click()
    bubble = operator.locator(".chat-visitor .chat-bubble").first
    assert bubble.inner_text() == payload
    operator.get_by_label("Reply").fill("Echo: " + payload)
    operator.get_by_label("Reply").press("Enter")
    frame.locator(".ol-op .ol-bubble").filter(has_text="Echo:").wait_for()
    # A new live row in the inbox list is built by script, so check it too.
    other = operator_page(browser, live_asgi, "otto")
    other.goto(f"{live_asgi.url}/console/inbox/")
    other.locator("#live-state.on").wait_for()
    write(frame, payload + " again")
    other.locator(".conv-preview").filter(has_text="again").wait_for()
    for target in (page, operator, other):
        assert target.evaluate("window.__pwned") is None
        assert target.title() != "pwned"
        assert target.locator("img[src=x]").count() == 0
    assert frame.locator("img").count() == 0
    assert frame.locator(".ol-me .ol-bubble").first.inner_text() == payload
    context.close()
    operator.context.close()
    other.context.close()


def test_reconnect_resends_and_resyncs_without_loss_or_duplicates(
    storage_browser, live_asgi, host_site, channel, operator
):
    from openline.conversations import actions

    context = visitor_context(storage_browser)
    routes = []

    def handler(ws):
        server = ws.connect_to_server()
        routes.append((ws, server))

    context.route_web_socket(re.compile(r".*/ws/widget/.*"), handler)
    page = context.new_page()
    frame = open_widget(page, host_site)
    write(frame, "first")
    frame.get_by_role("button", name="I accept").click()
    frame.locator(".ol-me .ol-meta").filter(has_text=re.compile("Sent|Delivered|Read")).wait_for()
    frame.locator(".ol-status").wait_for(state="hidden")
    assert len(routes) == 1
    conversation = Conversation.objects.get()
    # Drop the connection; while it is down the operator answers and the client writes.
    ws, server = routes[0]
    server.close()
    ws.close(code=4000)
    frame.get_by_text("Reconnecting…").wait_for()
    on_server(
        live_asgi,
        actions.send_reply,
        conversation=conversation,
        actor=operator,
        text="answer while you were away",
    )
    write(frame, "written while offline")
    frame.locator(".ol-status").wait_for(state="hidden", timeout=20_000)
    frame.locator(".ol-op .ol-bubble").filter(has_text="answer while you were away").wait_for()
    frame.locator(".ol-me:not(.ol-pending) .ol-bubble").filter(
        has_text="written while offline"
    ).wait_for()
    assert len(routes) >= 2
    page.wait_for_timeout(500)
    texts = frame.locator(".ol-bubble").all_inner_texts()
    for text in ("first", "answer while you were away", "written while offline"):
        assert texts.count(text) == 1, texts
    assert Message.objects.filter(text="written while offline").count() == 1
    # After a reload the history comes back from the server.
    page.reload()
    page.get_by_role("button", name="Chat with us").click()
    frame = page.frame_locator("iframe[title='Chat with us']")
    frame.locator(".ol-bubble").filter(has_text="written while offline").wait_for()
    texts = frame.locator(".ol-bubble").all_inner_texts()
    assert [
        t for t in texts if t in ("first", "answer while you were away", "written while offline")
    ] == [
        "first",
        "answer while you were away",
        "written while offline",
    ]
    context.close()


def test_returning_visitor_is_not_asked_again_until_a_new_version(
    storage_browser, live_asgi, host_site, channel, administrator, operator
):
    from openline.consent.services import update_agreement
    from openline.conversations import actions

    context = visitor_context(storage_browser)
    page = context.new_page()
    frame = open_widget(page, host_site)
    write(frame, "first visit")
    frame.get_by_role("button", name="I accept").click()
    frame.locator(".ol-me .ol-meta").filter(has_text=re.compile("Sent|Delivered|Read")).wait_for()
    visitor = Visitor.objects.get()
    on_server(
        live_asgi,
        actions.close_conversation,
        conversation=Conversation.objects.get(),
        actor=operator,
    )

    # Same browser, later: no gate, a new conversation starts straight away.
    page.goto(host_site.url)
    page.get_by_role("button", name="Chat with us").click()
    frame = page.frame_locator("iframe[title='Chat with us']")
    frame.locator(".ol-bubble").filter(has_text="first visit").wait_for()
    write(frame, "second visit")
    frame.locator(".ol-me:not(.ol-pending) .ol-bubble").filter(has_text="second visit").wait_for()
    assert frame.locator("#ol-gate").is_hidden()
    assert Visitor.objects.count() == 1 and Conversation.objects.count() == 2
    assert ConsentRecord.objects.count() == 1
    on_server(
        live_asgi,
        actions.close_conversation,
        conversation=Conversation.objects.order_by("-id").first(),
        actor=operator,
    )

    # The consent text changes: the next conversation needs the new version.
    on_server(
        live_asgi,
        update_agreement,
        actor=administrator,
        agreement=channel.agreement,
        texts={"en": "Version two: we also keep chat transcripts for 1 year."},
    )
    page.goto(host_site.url)
    page.get_by_role("button", name="Chat with us").click()
    frame = page.frame_locator("iframe[title='Chat with us']")
    frame.locator(".ol-bubble").filter(has_text="second visit").wait_for()
    write(frame, "third visit")
    frame.locator("#ol-gate").get_by_text("Version two").wait_for()
    screenshot(page, "widget-consent-gate-new-version", full_page=False)
    frame.get_by_role("button", name="I accept").click()
    frame.locator(".ol-me:not(.ol-waiting):not(.ol-pending) .ol-bubble").filter(
        has_text="third visit"
    ).wait_for()
    latest = ConsentRecord.objects.order_by("-id").first()
    assert latest.visitor == visitor and latest.version.number == 2 and latest.state == "given"
    context.close()


def test_withdrawal_from_the_widget_menu(storage_browser, host_site, channel):
    context = visitor_context(storage_browser)
    page = context.new_page()
    frame = open_widget(page, host_site)
    write(frame, "hello")
    frame.get_by_role("button", name="I accept").click()
    frame.locator(".ol-me .ol-meta").filter(has_text=re.compile("Sent|Delivered|Read")).wait_for()
    frame.get_by_role("button", name="Menu").click()
    with page.expect_download() as download:
        frame.get_by_role("menuitem", name="Download consent receipt").click()
    receipt_path = download.value.path()
    import json

    receipt = json.loads(Path(receipt_path).read_text())
    assert str(ConsentRecord.objects.get().uuid) in json.dumps(receipt)
    assert receipt["jws"].count(".") == 2
    frame.get_by_role("button", name="Menu").click()
    with page.expect_download() as printable:
        frame.get_by_role("menuitem", name="Printable consent receipt").click()
    assert printable.value.suggested_filename.endswith(".html")
    assert 'id="openline-receipt"' in Path(printable.value.path()).read_text()
    frame.get_by_role("button", name="Menu").click()
    screenshot(page, "widget-menu", full_page=False)
    frame.get_by_role("menuitem", name="Withdraw consent").click()
    frame.get_by_role("alertdialog").get_by_role("button", name="Withdraw consent").click()
    frame.get_by_text("You withdrew your consent").wait_for()
    withdrawal = ConsentRecord.objects.order_by("-id").first()
    assert withdrawal.state == "withdrawn" and withdrawal.address == host_site.url
    assert Conversation.objects.get().status == "closed"
    write(frame, "can I still chat?")
    frame.get_by_role("button", name="I accept").wait_for()
    assert not Message.objects.filter(text="can I still chat?").exists()
    context.close()


def test_widget_fills_a_phone_screen_and_works_with_the_keyboard(browser, host_site, channel):
    context = browser.new_context(
        viewport={"width": 390, "height": 780}, is_mobile=True, locale="de-DE"
    )
    page = context.new_page()
    page.goto(host_site.url)
    page.keyboard.press("Tab")
    launcher = page.get_by_role("button", name="Chatten Sie mit uns")
    launcher.focus()
    page.keyboard.press("Enter")
    frame = page.frame_locator("iframe[title='Chatten Sie mit uns']")
    box = frame.get_by_label("Nachricht schreiben…")
    box.wait_for()
    box.fill("Hallo")
    box.press("Enter")
    frame.get_by_role("button", name="Ich stimme zu").wait_for()
    size = page.locator("iframe").bounding_box()
    assert size["width"] == 390 and size["height"] == 780
    screenshot(page, "widget-phone-gate-de", full_page=False)
    frame.get_by_role("button", name="Ich lehne ab").click()
    frame.get_by_text("Ihre Nachricht wurde nicht gesendet").wait_for()
    box.press("Escape")
    page.locator("iframe").wait_for(state="hidden")
    assert nothing_stored()["visitors"] == 0
    context.close()


def test_inbox_updates_live_with_unread_badge_and_title(browser, live_asgi, channel):
    from openline.conversations import actions
    from openline.livechat.tests.helpers import consented_visitor

    operator = operator_page(browser, live_asgi)
    operator.goto(f"{live_asgi.url}/console/inbox/")
    operator.locator("#live-state.on").wait_for()
    started, _ = on_server(live_asgi, consented_visitor, channel=channel, text="New client here")
    row = operator.locator(".conv-row").filter(has_text="New client here")
    row.wait_for()
    on_server(
        live_asgi,
        actions.receive_message,
        conversation=started.conversation,
        visitor=started.visitor,
        text="Hello? Anyone?",
    )
    row = operator.locator(".conv-row").filter(has_text="Hello? Anyone?")
    expect(row.locator(".unread")).to_have_text("2")
    expect(operator).to_have_title(re.compile(r"^\(2\) Inbox"))
    expect(operator.locator('[data-box-count="new"]')).to_have_text("1")
    screenshot(operator, "console-inbox-live", full_page=False)
    row.click()
    expect(operator.locator(".conv-row.active .unread")).to_be_hidden()
    expect(operator).to_have_title(re.compile(r"^[^(]"))
    assert operator.js_errors == []
    operator.context.close()
