"""Every console table fits its page: at 1366 px (sidebar included) no column hides, and at
390 px tables become labelled cards. Long evidence, hashes and snippets wrap.

A real server, a real chromium; screenshots land in var/screenshots/console/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from openline.conftest import login

SHOTS = Path("var/screenshots/console")
VIEWPORTS = {"desktop": (1366, 900), "phone": (390, 844)}
LONG_URL = (
    "https://shop.example.com/catalogue/summer-collection/"
    + "very-long-segment-" * 8
    + "?utm_source=newsletter&utm_campaign=x"
)
LONG_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " * 3

# Measured in the page: anything wider than its box, and the document's own horizontal scroll.
MEASURE = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const problems = [];
  const main = document.querySelector('main') || document.body;
  for (const el of main.querySelectorAll('table, pre')) {
    const box = el.parentElement;
    const width = el.getBoundingClientRect().width;
    if (width > box.clientWidth + 1) problems.push(`${el.tagName}#${el.id || el.className} ${Math.round(width)} > ${box.clientWidth}`);
    if (el.tagName === 'PRE' && el.scrollWidth > el.clientWidth + 1) problems.push(`PRE scrolls ${el.scrollWidth} > ${el.clientWidth}`);
  }
  // Code shown as a block (the widget snippet, hashes) wraps instead of scrolling sideways.
  for (const el of main.querySelectorAll('code')) {
    if (getComputedStyle(el).display === 'block' && el.scrollWidth > el.clientWidth + 1) problems.push(`CODE#${el.id} scrolls ${el.scrollWidth} > ${el.clientWidth}`);
  }
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) problems.push(`document ${doc.scrollWidth} > ${window.innerWidth}`);
  return problems;
}"""
# At phone width every data cell of a table shows its column's label.
UNLABELLED = """() => {
  const missing = [];
  for (const table of document.querySelectorAll('main table.table')) {
    const heads = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim());
    for (const td of table.querySelectorAll('tbody td')) {
      // Action cells (buttons only) are deliberately unlabelled.
      if (td.colSpan > 1 || td.getAttribute('data-label') === '') continue;
      const index = [...td.parentElement.children].indexOf(td);
      if (heads[index] && td.getAttribute('data-label') !== heads[index]) missing.push(`${table.id || table.className}: ${heads[index]}`);
      if (heads[index] && getComputedStyle(td, '::before').content === 'none') missing.push(`${table.id}: no visible label for ${heads[index]}`);
    }
    if (getComputedStyle(table.querySelector('tbody tr') || table).display === 'table-row') missing.push(`${table.id}: still a table row`);
  }
  return missing;
}"""


@pytest.fixture
def console_data(channel, administrator, operator, agreement):
    """Records with long values, a CRM client, history, a verification run, a waiting client."""
    from openline.consent import services
    from openline.consent.models import VerificationRun
    from openline.conversations.models import Conversation, Message, Visitor
    from openline.crm.saving import save_conversation_to_crm
    from openline.openchannels.services import update_consent_settings
    from openline.testing.records import accept_livechat_consent

    conversations = []
    for i in range(6):
        visitor = Visitor.objects.create(
            origin="livechat", channel=channel, language="en", user_agent=LONG_UA
        )
        chat = Conversation.objects.create(
            channel=channel, visitor=visitor, origin="livechat", page_url=LONG_URL
        )
        Message.objects.create(
            conversation=chat,
            sender="visitor",
            text="Hello! " + "a-very-long-word" * 12,
            client_id="m1",
        )
        Message.objects.create(
            conversation=chat,
            sender="operator",
            author=operator,
            text="Hi, how can I help?",
            client_id="m2",
        )
        accept_livechat_consent(
            visitor,
            channel,
            source_label="shop.example.com",
            address=LONG_URL,
            ip="2001:db8:85a3:1234:5678:8a2e:370:7334" if i % 2 else "203.0.113.7",
            user_agent=LONG_UA,
            conversation=chat,
            evidence={"button": "I accept", "page_title": "Summer collection " * 6},
        )
        conversations.append(chat)
    save_conversation_to_crm(
        actor=operator,
        conversation=conversations[0],
        name="Jane Catherine Doe-Montgomery",
        email="jane.catherine.doe-montgomery@example-enterprise-mail.com",
        phone="+49 30 1234567",
    )
    services.update_agreement(
        actor=administrator,
        agreement=agreement,
        texts={"en": "We process your name, messages and e-mail address to answer you. " * 4},
    )
    update_consent_settings(
        actor=administrator,
        channel=channel,
        consent_enabled=True,
        agreement=agreement,
        messenger_warning_text="By writing to us you agree that we store your messages. " * 3,
    )
    Visitor.objects.create(
        origin="telegram",
        channel=channel,
        external_id="4242",
        name="Waiting client",
        awaiting_consent_since=timezone.now(),
    )
    VerificationRun.objects.create(created_at=timezone.now())
    from openline.consent.sealing import seal_pending

    seal_pending()
    return conversations


def _pages(data, agreement, channel):
    from openline.consent.models import ConsentRecord

    record = ConsentRecord.objects.filter(conversation=data[0]).order_by("id").first()
    return {
        "records": "/console/obtained-consents/",
        "record": f"/console/obtained-consents/{record.uuid}/",
        "history": "/console/consents/history/",
        "consents": "/console/consents/",
        "versions": f"/console/consents/{agreement.pk}/versions/",
        "languages": f"/console/consents/{agreement.pk}/languages/",
        "users": "/console/users/",
        "user-new": "/console/users/new/",
        "crm": "/console/crm/items/",
        "awaiting": "/console/crm/awaiting/",
        "registry": "/console/registry/",
        "transcript": f"/console/transcripts/{data[0].pk}/",
        "channel-general": f"/console/contact-center/open-channels/{channel.pk}/general/",
        # The widget snippet: a long code block that must wrap.
        "livechat-snippet": f"/console/contact-center/live-chat/{channel.pk}/",
    }


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_every_console_table_fits_and_reads_as_cards_on_phones(
    live_asgi, browser, console_data, agreement, channel, viewport
):
    width, height = VIEWPORTS[viewport]
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        login(page, live_asgi.url, "ada")
        problems: dict[str, list[str]] = {}
        for name, path in _pages(console_data, agreement, channel).items():
            response = page.goto(live_asgi.url + path)
            assert response is not None and response.status == 200, (name, path)
            page.screenshot(path=str(SHOTS / f"{name}-{viewport}.png"), full_page=True)
            found = page.evaluate(MEASURE)
            if viewport == "phone":
                found += page.evaluate(UNLABELLED)
            if found:
                problems[name] = found
        assert problems == {}
        assert errors == []
    finally:
        context.close()


def test_obtained_consents_keeps_every_column_at_1366(live_asgi, browser, console_data):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    page = context.new_page()
    try:
        login(page, live_asgi.url, "ada")
        page.goto(live_asgi.url + "/console/obtained-consents/")
        headers = page.locator("#records thead th")
        assert headers.all_inner_texts() == [
            "DATE",
            "CLIENT",
            "SOURCE",
            "ADDRESS",
            "IP",
            "CONSENT",
            "STATE",
            "ORIGIN",
        ]
        for index in range(headers.count()):
            box = headers.nth(index).bounding_box()
            assert box is not None and box["x"] + box["width"] <= 1366 and box["width"] > 30
        # The full IPv6 address and instant stay available although shortened on screen.
        clipped = page.locator("#records code.clip").first
        assert clipped.get_attribute("title") == clipped.inner_text()
        assert page.locator("#records time").first.get_attribute("title").endswith("UTC")
        # Her "I accept" and the record made when she was saved to the CRM.
        assert page.get_by_text("Jane Catherine Doe-Montgomery").count() == 2
    finally:
        context.close()


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_an_auditor_goes_from_a_record_to_its_transcript(
    live_asgi, browser, console_data, auditor, viewport
):
    width, height = VIEWPORTS[viewport]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        login(page, live_asgi.url, "audrey")
        assert page.url == f"{live_asgi.url}/console/obtained-consents/"
        page.get_by_label("Client or IP").fill("Doe-Montgomery")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url(lambda url: "q=Doe-Montgomery" in url)
        assert page.locator("#records tbody tr").count() == 2
        page.screenshot(path=str(SHOTS / f"auditor-search-{viewport}.png"), full_page=True)
        page.locator("#records tbody tr").last.locator('td[data-label="Date"] a').click()
        page.get_by_role("link", name=f"Transcript of chat #{console_data[0].pk}").click()
        page.wait_for_url(f"{live_asgi.url}/console/transcripts/{console_data[0].pk}/")
        assert page.locator("#transcript-client").inner_text() == "Jane Catherine Doe-Montgomery"
        assert page.locator("textarea").count() == 0
        assert page.evaluate(MEASURE) == []
        page.screenshot(path=str(SHOTS / f"auditor-transcript-{viewport}.png"), full_page=True)
        # The auditor's navigation has no CRM heading.
        headings = page.locator(".nav-heading").all_text_contents()
        assert "CRM" not in headings and "Consent" in headings
    finally:
        context.close()
