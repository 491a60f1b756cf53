"""CRM pages in a real browser: Save to CRM form, item page, list, deletion."""

from __future__ import annotations

import pytest

from openline.conftest import login, screenshot
from openline.consent.models import ConsentRecord
from openline.crm.models import CrmItem
from openline.crm.tests.conftest import accept_consent, make_chat

pytestmark = pytest.mark.browser


def test_operator_saves_a_chat_and_administrator_deletes_the_client(
    live_asgi, page, browser, channel, operator, administrator
):
    chat = make_chat(
        channel,
        name="Jane Doe",
        email="jane@example.com",
        texts=["Hi! Do you ship to Berlin?", "Thanks"],
    )
    accept_consent(chat)
    login(page, live_asgi.url, "otto")

    page.goto(f"{live_asgi.url}/console/crm/conversations/{chat.pk}/save/")
    page.get_by_role("heading", name="Save to CRM").wait_for()
    assert page.get_by_label("Name").input_value() == "Jane Doe"
    page.get_by_label("Phone").fill("not a phone")
    page.get_by_role("button", name="Save to CRM").click()
    page.get_by_role("alert").filter(has_text="Enter a phone number").wait_for()
    screenshot(page, "crm-save-form-error")
    page.get_by_label("Phone").fill("+49 30 1234567")
    page.get_by_label("Contact").check()
    page.get_by_role("button", name="Save to CRM").click()
    page.get_by_text("Saved to CRM as Contact").wait_for()
    screenshot(page, "crm-item-page")
    item = CrmItem.objects.get()
    assert page.url.endswith(f"/console/crm/items/{item.pk}/")
    assert page.get_by_test_id("consents").locator("tbody tr").count() == 2

    page.get_by_label("Add a note").fill("Wants delivery to Berlin")
    page.get_by_role("button", name="Add note").click()
    page.get_by_text("Note added.").wait_for()

    page.get_by_role("link", name="CRM", exact=True).click()
    page.get_by_role("heading", name="Leads and contacts").wait_for()
    page.get_by_role("searchbox", name="Search").fill("30 1234")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Jane Doe").wait_for()
    screenshot(page, "crm-list")
    assert page.js_errors == []

    admin = browser.new_context(viewport={"width": 1280, "height": 800})
    admin_page = admin.new_page()
    login(admin_page, live_asgi.url, "ada")
    admin_page.goto(f"{live_asgi.url}/console/crm/items/{item.pk}/")
    admin_page.get_by_role("link", name="Delete client data").click()
    admin_page.get_by_text("Will be removed").wait_for()
    screenshot(admin_page, "crm-delete-confirm")
    admin_page.get_by_role("button", name="Delete client data").click()
    admin_page.get_by_text("consent records kept as proof").wait_for()
    assert not CrmItem.objects.exists()
    assert ConsentRecord.objects.filter(visitor=chat.visitor).count() == 2
    # A second attempt (a stale tab, a colleague) is told the data is already gone.
    admin_page.goto(f"{live_asgi.url}/console/crm/items/{item.pk}/delete/")
    admin_page.get_by_test_id("already-deleted").wait_for()
    screenshot(admin_page, "crm-already-deleted")
    admin.close()


def test_crm_item_page_on_a_phone(live_asgi, browser, channel, operator):
    from openline.crm import services

    chat = make_chat(channel, name="Mobile Mo", email="mo@example.com")
    accept_consent(chat)
    item = services.save_conversation_to_crm(
        actor=operator, conversation=chat, name="Mobile Mo"
    ).item
    context = browser.new_context(viewport={"width": 390, "height": 780}, is_mobile=True)
    page = context.new_page()
    login(page, live_asgi.url, "otto")
    page.goto(f"{live_asgi.url}/console/crm/items/{item.pk}/")
    page.get_by_role("heading", name="Mobile Mo").wait_for()
    screenshot(page, "crm-item-mobile")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto(f"{live_asgi.url}/console/crm/items/")
    page.get_by_role("link", name="Mobile Mo").wait_for()
    screenshot(page, "crm-list-mobile")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()


def test_operator_sees_the_matched_item_before_saving(live_asgi, page, channel, operator):
    from openline.crm import services

    first = make_chat(channel, name="Jane Doe", email="jane@example.com")
    accept_consent(first)
    item = services.save_conversation_to_crm(
        actor=operator, conversation=first, name="Jane Doe", email="jane@example.com"
    ).item
    second = make_chat(channel, name="Jane", email="JANE@Example.com", texts=["It's me again"])
    accept_consent(second)
    login(page, live_asgi.url, "otto")
    page.goto(f"{live_asgi.url}/console/crm/conversations/{second.pk}/save/")
    match = page.get_by_test_id("crm-match")
    match.wait_for()
    assert f"Matches the existing Lead #{item.pk} · Jane Doe by email" in match.inner_text()
    screenshot(page, "crm-save-form-matched")
    page.get_by_role("button", name="Save to CRM").click()
    page.get_by_text(f"Linked to the existing Lead #{item.pk} (matched by email").wait_for()
    assert page.get_by_test_id("conversations").locator("tbody tr").count() == 2
    assert page.get_by_test_id("consents").locator("tbody tr").count() == 4
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Phones").fill("+49 30 1234567\nnot a number")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("alert").filter(has_text="“not a number”").wait_for()
    screenshot(page, "crm-edit-error")
    assert page.js_errors == []
