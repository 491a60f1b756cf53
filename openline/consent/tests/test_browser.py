"""Consents and Obtained consents in a real browser (chromium through Playwright)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from openline.conftest import login, screenshot
from openline.consent import triggers
from openline.consent.models import Agreement
from openline.conversations.models import Visitor

pytestmark = pytest.mark.browser


def test_consent_form_previews_exactly_what_the_client_sees(live_asgi, page, administrator):
    login(page, live_asgi.url, "ada")
    page.get_by_role("link", name="Consents", exact=True).click()
    page.get_by_role("link", name="Create new consent").click()
    page.get_by_label("Name").fill("Chat privacy notice")
    page.get_by_label("Text", exact=True).fill(
        "<p>We keep <strong>your messages</strong> for 3 years.</p>"
        '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
        '<a href="javascript:window.pwned = 3">bad</a> <a href="https://example.com/privacy">Privacy policy</a>'
    )
    preview = page.locator("#consent-preview")
    # Plain text first: the markup is shown as text, never run.
    expect(preview).to_contain_text("<strong>your messages</strong>")
    page.get_by_label("Allow HTML in agreement text").check()
    expect(preview.locator("strong")).to_have_count(1)
    assert preview.locator("strong").inner_text() == "your messages"
    assert preview.locator("script").count() == 0 and preview.locator("img").count() == 0
    assert (
        preview.get_by_role("link", name="Privacy policy").get_attribute("rel")
        == "noopener noreferrer"
    )
    assert preview.locator("a", has_text="bad").get_attribute("href") is None
    assert page.evaluate("window.pwned") is None
    screenshot(page, "consent-form-preview")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Consent “Chat privacy notice” created.").wait_for()
    agreement = Agreement.objects.get(name="Chat privacy notice")
    html = agreement.current_version.texts.get().rendered_html
    assert "<strong>your messages</strong>" in html and "script" not in html
    # Saving the same text again makes no new version; a change does.
    page.get_by_role("button", name="Save").click()
    page.get_by_text("no new version").wait_for()
    page.get_by_label("Text", exact=True).fill("<p>Shorter text.</p>")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved as version 2.").wait_for()
    page.get_by_role("tab", name="Versions").click()
    page.get_by_role("link", name="Compare with v1").click()
    page.locator(".diff .add").first.wait_for()
    screenshot(page, "consent-version-diff")
    assert page.js_errors == []


def test_obtained_consents_filtered_by_consent_and_last_7_days(
    live_asgi, page, auditor, channel, agreement
):
    from openline.consent.services import create_agreement, record_consent

    other = create_agreement(
        actor=None, name="Marketing notice", text="Other text", allow_html=False
    )
    people = [
        Visitor.objects.create(origin="livechat", channel=channel, name=name)
        for name in ("Vera Visitor", "Mia Müller", "Old Oscar", "Nina Newsletter")
    ]

    def give(visitor, agr, ip="203.0.113.7"):
        return record_consent(
            visitor=visitor,
            version=agr.current_version,
            language="en",
            state="given",
            method="clicked_accept",
            origin="livechat",
            source_type="website",
            source_label="example.com",
            address="https://example.com/pricing",
            ip=ip,
            channel=channel,
        )

    recent = [give(people[0], agreement), give(people[1], agreement, ip="2001:db8::7")]
    old = give(people[2], agreement)
    give(people[3], other)
    triggers.drop(connection)
    try:
        with connection.cursor() as cursor:  # test data only: move one record 20 days back
            cursor.execute(
                "UPDATE consent_consentrecord SET created_at = %s WHERE id = %s",
                [timezone.now() - dt.timedelta(days=20), old.pk],
            )
    finally:
        triggers.install(connection)

    login(page, live_asgi.url, "audrey")
    page.get_by_role("link", name="Obtained consents").click()
    page.get_by_label("Consent", exact=True).select_option(label=agreement.name)
    page.get_by_label("Date").select_option(label="Last 7 days")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(lambda url: "period=last7" in url and f"consent={agreement.pk}" in url)
    rows = page.locator("#records tbody tr")
    assert rows.count() == 2
    table = page.locator("#records").inner_text()
    assert "Vera Visitor" in table and "Mia Müller" in table
    assert "Old Oscar" not in table and "Nina Newsletter" not in table
    assert "2001:db8::7" in table
    screenshot(page, "obtained-consents-filtered")
    # Both records may share the same second: open the first one by its own link.
    page.locator(f'#records a[href$="/obtained-consents/{recent[0].uuid}/"]').click()
    page.get_by_role("heading", name="Consent record").wait_for()
    assert page.url.endswith(f"/console/obtained-consents/{recent[0].uuid}/")
    assert str(recent[0].uuid) in page.content()
    screenshot(page, "obtained-consent-detail")
    assert page.js_errors == []
