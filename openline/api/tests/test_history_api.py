"""The consent history over the API: who reads it, filters, cursor pages."""

from __future__ import annotations

import datetime as dt

from django.test import Client
from django.utils import timezone

from openline.accounts.api_tokens import create_token
from openline.consent import services
from openline.consent.models import AuditEvent
from openline.openchannels.services import create_open_channel, update_consent_settings

URL = "/api/v1/consent-history"


def _ids(client: Client, query: str = "") -> list[int]:
    response = client.get(f"{URL}{query}")
    assert response.status_code == 200, response.content
    return [e["id"] for e in response.json()["items"]]


def test_who_reads_the_consent_history(
    admin_client, auditor_client, operator_client, auditor, operator, channel
):
    expected = list(AuditEvent.objects.order_by("-id").values_list("id", flat=True)[:50])
    assert expected, "the channel fixture records its consent settings"
    assert _ids(admin_client) == expected
    assert _ids(auditor_client) == expected
    assert operator_client.get(URL).status_code == 403
    assert Client().get(URL).status_code == 401
    # A read-only token reads it (it is read-only anyway); an operator's token is refused.
    token = create_token(auditor, "reports", read_only=True).secret
    assert (
        Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {token}").json()["items"][0]["id"]
        == (expected[0])
    )
    refused = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {create_token(operator, 'ops').secret}")
    assert refused.status_code == 403
    # Nothing in the history can be written over the API.
    assert admin_client.post(URL, data={}, content_type="application/json").status_code == 405


def test_filters_and_cursor_pages(administrator, auditor_client, channel):
    news = services.create_agreement(
        actor=administrator, name="Newsletter", text="We send news.", allow_html=False
    )
    services.update_agreement(actor=administrator, agreement=news, name="News and offers")
    shop = create_open_channel(actor=administrator, name="Shop")
    update_consent_settings(actor=administrator, channel=shop, consent_enabled=True, agreement=news)
    by_news = _ids(auditor_client, f"?agreement={news.pk}")
    assert by_news == list(
        AuditEvent.objects.filter(agreement=news).order_by("-id").values_list("id", flat=True)
    )
    assert len(by_news) >= 2
    created = auditor_client.get(f"{URL}?agreement={news.pk}&action=agreement_created").json()
    assert [e["action"] for e in created["items"]] == ["agreement_created"]
    event = created["items"][0]
    assert event["subject"] and event["actor_id"] == administrator.pk
    assert event["action_label"] == "Consent created"
    renamed = auditor_client.get(f"{URL}?action=agreement_renamed").json()["items"]
    assert renamed and renamed[0]["after"] and renamed[0]["before"]
    by_shop = auditor_client.get(f"{URL}?channel={shop.pk}").json()["items"]
    assert by_shop and all(e["channel_id"] == shop.pk for e in by_shop)
    assert {e["action"] for e in by_shop} <= {"channel_consent_settings"}
    # Days: today has everything, tomorrow nothing; until before since is refused.
    today = timezone.localdate()
    tomorrow = today + dt.timedelta(days=1)
    everything = _ids(auditor_client)
    assert _ids(auditor_client, f"?since={today}&until={today}") == everything
    assert _ids(auditor_client, f"?since={tomorrow}") == []
    assert _ids(auditor_client, f"?until={today - dt.timedelta(days=1)}") == []
    assert _ids(auditor_client, "?since=0001-01-01&until=9999-12-31") == everything
    backwards = auditor_client.get(f"{URL}?since={tomorrow}&until={today}")
    assert backwards.status_code == 422 and backwards.json()["detail"].startswith("until:")
    # Pages, newest first, with no overlap and nothing skipped.
    seen: list[int] = []
    cursor = ""
    while True:
        page = auditor_client.get(f"{URL}?limit=2{cursor}").json()
        seen += [e["id"] for e in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == everything
    # Bad filters name the field.
    for query, field in (
        ("?action=deleted", "action"),
        ("?agreement=abc", "agreement"),
        ("?since=yesterday", "since"),
        ("?limit=0", "limit"),
    ):
        refused = auditor_client.get(f"{URL}{query}")
        assert refused.status_code == 422 and field in refused.content.decode(), query
