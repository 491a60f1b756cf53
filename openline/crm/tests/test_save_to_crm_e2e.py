"""End to end: a client accepts the consent in the live chat, the operator saves the chat to
the CRM, and both the Obtained consents list and the CRM item show the two records."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from openline.conftest import login, screenshot
from openline.consent.models import ConsentRecord
from openline.conversations.models import Conversation, Message
from openline.crm.models import CrmItem
from openline.livechat.tests.conftest import host_site  # noqa: F401 - the embedding website

pytestmark = pytest.mark.browser


def new_page(browser, live_asgi=None, username=None, width=1280):
    context = browser.new_context(viewport={"width": width, "height": 800}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    if username:
        login(page, live_asgi.url, username)
    return page


def test_live_chat_accept_then_save_to_crm_links_the_consent(
    browser,
    live_asgi,
    host_site,  # noqa: F811
    channel,
    operator,
    administrator,
):
    # 1. The client writes in the widget on the shop's pricing page and accepts the consent.
    client = new_page(browser, width=1100)
    client.goto(host_site.url)
    client.get_by_role("button", name="Chat with us").click()
    frame = client.frame_locator("iframe[title='Chat with us']")
    box = frame.get_by_label("Write a message…")
    box.fill("Hi, I'm Jane Doe, jane@example.com, can you call me on +49 30 1234567?")
    box.press("Enter")
    frame.get_by_role("button", name="I accept").click()
    frame.locator(".ol-me .ol-meta").filter(has_text=re.compile("Sent|Delivered|Read")).wait_for()
    conversation = Conversation.objects.get()
    first = ConsentRecord.objects.get()
    assert first.address == host_site.url

    # 2. The operator opens the chat and chooses … → Save to CRM.
    otto = new_page(browser, live_asgi, "otto")
    otto.goto(f"{live_asgi.url}/console/inbox/{conversation.pk}/")
    otto.get_by_label("More actions").click()  # the three-dot menu (…)
    otto.get_by_role("menuitem", name="Save to CRM").click()
    otto.get_by_role("heading", name="Save to CRM").wait_for()
    assert otto.url.endswith(f"/console/crm/conversations/{conversation.pk}/save/")
    consent_line = otto.get_by_test_id("consent-line")
    assert f"Consent obtained in chat #{conversation.pk} on" in consent_line.inner_text()
    assert host_site.url in consent_line.inner_text()
    otto.get_by_label("Name").fill("Jane Doe")
    otto.get_by_label("Email").fill("jane@example.com")
    otto.get_by_label("Phone").fill("+49 30 1234567")
    screenshot(otto, "e2e-save-to-crm-form")
    otto.get_by_role("button", name="Save to CRM").click()
    otto.get_by_text("The client's consent is now linked to this CRM item.").wait_for()
    item = CrmItem.objects.get()
    assert otto.url.endswith(f"/console/crm/items/{item.pk}/")

    # Saving again adds nothing to the registry.
    otto.goto(f"{live_asgi.url}/console/crm/conversations/{conversation.pk}/save/")
    otto.get_by_test_id("crm-match").filter(has_text="already saved").wait_for()
    otto.get_by_role("button", name="Save to CRM").click()
    otto.get_by_text("This chat was already saved").wait_for()
    assert ConsentRecord.objects.count() == 2
    second = ConsentRecord.objects.exclude(pk=first.pk).get()
    assert second.address == f"{live_asgi.url}/console/inbox/{conversation.pk}/"

    # 3. The Obtained consents list shows two records: the page URL, then the conversation.
    ada = new_page(browser, live_asgi, "ada")
    ada.goto(f"{live_asgi.url}/console/obtained-consents/")
    rows = ada.locator("#records tbody tr")
    rows.first.wait_for()
    assert rows.count() == 2
    newest, oldest = rows.nth(0), rows.nth(1)
    assert newest.locator("td.addr a").get_attribute("href") == second.address
    assert f"/console/inbox/{conversation.pk}/" in newest.locator("td.addr").inner_text()
    assert f"Lead #{item.pk}" in newest.inner_text()
    assert "Saved to CRM by an operator" in newest.inner_text()
    assert oldest.locator("td.addr a").get_attribute("href") == host_site.url
    assert "127.0.0.1" in oldest.inner_text()  # the client's IP; the CRM record has none
    assert "none" in newest.locator("td").nth(4).inner_text()
    screenshot(ada, "e2e-obtained-consents-two-records")

    # 4. The CRM item page shows the conversation and both records.
    ada.get_by_role("link", name=f"Lead #{item.pk}").click()
    ada.get_by_role("heading", name="Jane Doe").wait_for()
    conversations = ada.get_by_test_id("conversations").locator("tbody tr")
    assert conversations.count() == 1
    assert f"Chat #{conversation.pk}" in conversations.first.inner_text()
    assert "Website" in conversations.first.inner_text()
    assert conversations.first.get_by_role("link", name="Open chat").get_attribute("href") == (
        f"/console/inbox/{conversation.pk}/"
    )
    consents = ada.get_by_test_id("consents").locator("tbody tr")
    assert consents.count() == 2
    assert "Live chat" in consents.nth(0).inner_text()
    assert "CRM" in consents.nth(1).inner_text()
    line = ada.get_by_test_id("consent-line").inner_text()
    assert f"Consent obtained in chat #{conversation.pk} on" in line and host_site.url in line
    screenshot(ada, "e2e-crm-item-with-conversation-and-consents")

    # The record links lead to the registry's record pages.
    consents.nth(1).get_by_role("link", name="View record").click()
    ada.wait_for_url(f"**/console/obtained-consents/{second.uuid}/")

    # 5. The client asks to be forgotten: the records stay, as "Deleted client", and verify.
    ada.goto(f"{live_asgi.url}/console/crm/items/{item.pk}/")
    ada.get_by_role("link", name="Delete client data").click()
    ada.get_by_test_id("will-remove").filter(has_text="1 message in 1 conversation").wait_for()
    ada.get_by_role("button", name="Delete client data").click()
    ada.get_by_text("2 consent records kept as proof").wait_for()
    ada.goto(f"{live_asgi.url}/console/obtained-consents/")
    rows.first.wait_for()
    conversation.visitor.refresh_from_db()
    pseudonym = f"Deleted client {str(conversation.visitor.public_id)[:8]}"
    assert rows.count() == 2
    assert all(pseudonym in rows.nth(i).inner_text() for i in range(2))
    screenshot(ada, "e2e-obtained-consents-after-deletion")
    # The record's Source still links to the CRM item, which says what happened to it.
    rows.nth(0).get_by_role("link", name=f"Lead #{item.pk}").click()
    ada.get_by_test_id("already-deleted").wait_for()
    screenshot(ada, "e2e-crm-item-deleted")
    call_command("consent_seal")
    out = io.StringIO()
    call_command("consent_verify", stdout=out)
    assert "Consent registry verified" in out.getvalue()
    assert not Message.objects.filter(conversation=conversation).exists()
    for page in (client, otto, ada):
        assert page.js_errors == []
        page.context.close()
