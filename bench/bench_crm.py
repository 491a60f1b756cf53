"""CRM: Save to CRM latency, matching lookups and the list page with many items.

Runs on a throw-away test database (SQLite file under var/, or a PostgreSQL test
database when DATABASE_URL points at PostgreSQL), so the real data is untouched.
"""

from __future__ import annotations

import statistics
import time


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def run(args) -> list[dict]:
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        return _measure(quick=args.quick)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


def _analyze() -> None:
    """Refresh planner statistics after the bulk load, as autovacuum would in production."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _measure(*, quick: bool) -> list[dict]:
    from django.test import Client

    from openline.accounts.services import create_staff_user
    from openline.consent.services import create_agreement, record_consent
    from openline.conversations.models import Conversation, Visitor
    from openline.crm import services
    from openline.crm.models import CrmIdentity, CrmItem, CrmVisitor
    from openline.crm.normalize import normalize_phone
    from openline.openchannels.services import create_open_channel

    saves = 60 if quick else 300
    bulk_items = 2_000 if quick else 50_000
    admin = create_staff_user(
        username="bench-admin", password="bench-password-123", role="administrator"
    )
    operator = create_staff_user(
        username="bench-op", password="bench-password-123", role="operator"
    )
    agreement = create_agreement(
        actor=admin, name="Bench notice", text="We process your data.", allow_html=False
    )
    channel = create_open_channel(
        actor=admin,
        name="Bench site",
        operators=[operator],
        connectors=["livechat"],
        consent_enabled=True,
        agreement=agreement,
    )
    version = agreement.current_version

    # Many existing clients, inserted in bulk (fixture data, not the measured path).
    visitors = Visitor.objects.bulk_create(
        [
            Visitor(origin="livechat", channel=channel, name=f"Client {i}")
            for i in range(bulk_items)
        ],
        batch_size=2000,
    )
    items = CrmItem.objects.bulk_create(
        [
            CrmItem(kind="lead" if i % 3 else "contact", name=f"Client {i}", source_channel=channel)
            for i in range(bulk_items)
        ],
        batch_size=2000,
    )
    CrmVisitor.objects.bulk_create(
        [CrmVisitor(item=item, visitor=v) for item, v in zip(items, visitors, strict=True)],
        batch_size=2000,
    )
    identities = []
    for i, item in enumerate(items):
        identities.append(
            CrmIdentity(item=item, kind="email", value=f"client{i}@example.com", display="")
        )
        phone = f"+49 30 {1000000 + i}"
        identities.append(
            CrmIdentity(item=item, kind="phone", value=normalize_phone(phone), display=phone)
        )
    CrmIdentity.objects.bulk_create(identities, batch_size=5000)
    _analyze()

    # Save to CRM: new chats from clients who accepted the consent; every tenth matches.
    timings = []
    for i in range(saves):
        visitor = Visitor.objects.create(origin="livechat", channel=channel)
        chat = Conversation.objects.create(channel=channel, visitor=visitor, origin="livechat")
        record_consent(
            visitor=visitor,
            version=version,
            language="en",
            state="given",
            method="clicked_accept",
            origin="livechat",
            source_type="website",
            address="https://shop.example.com/",
            ip="203.0.113.9",
            channel=channel,
            conversation=chat,
        )
        email = f"client{i * 7}@example.com" if i % 10 == 0 else f"new{i}@example.com"
        started = time.perf_counter()
        services.save_conversation_to_crm(
            actor=operator,
            conversation=chat,
            name=f"New {i}",
            email=email,
            phone="",
            base_url="https://openline.example.com",
        )
        timings.append((time.perf_counter() - started) * 1000)

    # Matching lookups against all identities.
    lookups = []
    for i in range(0, bulk_items, max(1, bulk_items // 200)):
        parsed = services.parse_identities(phones=[f"+49 30 {1000000 + i}"])
        started = time.perf_counter()
        match = services.find_match(identities=parsed)
        lookups.append((time.perf_counter() - started) * 1000)
        assert match is not None

    # The list page, as an administrator: first page, a deep keyset page, a phone search.
    client = Client()
    client.force_login(admin)

    def page_ms(url: str, repeat: int = 5) -> float:
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, url
        return statistics.median(samples)

    deep = items[len(items) // 10].pk
    first_page = page_ms("/console/crm/items/")
    deep_page = page_ms(f"/console/crm/items/?after={deep}")
    search = page_ms("/console/crm/items/?q=%2B49+30+1000123")
    filtered = page_ms("/console/crm/items/?kind=contact&consent=given")
    no_consent = page_ms("/console/crm/items/?consent=none")

    return [
        {
            "name": "save_to_crm_p50",
            "value": round(statistics.median(timings), 2),
            "unit": "ms",
            "target": "< 25 ms",
            "ok": statistics.median(timings) < 25,
        },
        {
            "name": "save_to_crm_p95",
            "value": round(_percentile(timings, 95), 2),
            "unit": "ms",
            "target": "< 60 ms",
            "ok": _percentile(timings, 95) < 60,
        },
        {
            "name": "match_lookup_p50",
            "value": round(statistics.median(lookups), 3),
            "unit": "ms",
            "target": f"< 2 ms with {bulk_items * 2} identities",
            "ok": statistics.median(lookups) < 2,
        },
        {
            "name": "match_lookup_p95",
            "value": round(_percentile(lookups, 95), 3),
            "unit": "ms",
        },
        {
            "name": "list_first_page",
            "value": round(first_page, 1),
            "unit": "ms",
            "target": f"< 150 ms with {bulk_items} items",
            "ok": first_page < 150,
        },
        {
            "name": "list_deep_keyset_page",
            "value": round(deep_page, 1),
            "unit": "ms",
            "target": "< 150 ms",
            "ok": deep_page < 150,
        },
        {
            "name": "list_phone_search",
            "value": round(search, 1),
            "unit": "ms",
            "target": "< 300 ms",
            "ok": search < 300,
        },
        {
            "name": "list_filter_contact_with_consent",
            "value": round(filtered, 1),
            "unit": "ms",
            "target": "< 300 ms",
            "ok": filtered < 300,
        },
        {
            "name": "list_filter_no_consent",
            "value": round(no_consent, 1),
            "unit": "ms",
            "target": "< 300 ms",
            "ok": no_consent < 300,
        },
    ]
