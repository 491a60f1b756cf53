"""CRM: Save to CRM latency, matching lookups and the list page with many items.

Runs on a throw-away test database (SQLite file under var/, or a PostgreSQL test
database when DATABASE_URL points at PostgreSQL), so the real data is untouched. Everything runs
in this one process (Django's test client, no HTTP server), one request at a time: it uses one
core and the database the other.

Ceilings, measured in the same run: for the lookups and the list pages, the exact statements
Django sent (SQL and parameters, captured with an execute wrapper) run again directly on the
database driver's own cursor, with no ORM, view or template around them.
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


def _captured(action) -> list[tuple[str, tuple]]:
    """Run ``action`` once; return the (sql, params) of every statement it sent."""
    from django.db import connection

    statements: list[tuple[str, tuple]] = []

    def wrapper(execute, sql, params, many, context):
        statements.append((sql, tuple(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        action()
    return statements


def _direct_ms(statements: list[tuple[str, tuple]], repeat: int = 5) -> float:
    """Median ms of running ``statements`` in order on the driver's cursor (no ORM)."""
    from django.db import connection

    connection.ensure_connection()
    if connection.vendor == "sqlite":
        # Django's own thin cursor class: it only turns %s placeholders into SQLite's ?.
        from django.db.backends.sqlite3.base import SQLiteCursorWrapper

        raw = connection.connection.cursor(factory=SQLiteCursorWrapper)
    else:
        raw = connection.connection.cursor()
    samples = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        for sql, params in statements:
            raw.execute(sql, params)
            if raw.description is not None:
                raw.fetchall()
        samples.append((time.perf_counter() - started) * 1000)
    raw.close()
    return statistics.median(samples[1:])


def _row(name, value, unit, digits, *, statements=None, target=None, ok=None) -> dict:
    row: dict = {"name": name, "value": round(value, digits), "unit": unit}
    if statements is not None:
        ceiling = _direct_ms(statements)
        row["ceiling"] = {
            "name": f"same {len(statements)} SQL statements on the driver's cursor",
            "value": round(ceiling, 3),
            "unit": "ms",
        }
        row["ratio"] = round(value / ceiling, 2) if ceiling else None
    if target is not None:
        row["target"] = target
        row["ok"] = ok
    return row


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
    probe = services.parse_identities(phones=[f"+49 30 {1000000 + bulk_items // 3}"])
    lookup_sql = _captured(lambda: services.find_match(identities=probe))

    # The list page, as an administrator: first page, a deep keyset page, a phone search.
    client = Client()
    client.force_login(admin)

    def page(url: str, repeat: int = 5) -> tuple[float, list[tuple[str, tuple]]]:
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, url
        return statistics.median(samples), _captured(lambda: client.get(url))

    deep = items[len(items) // 10].pk
    p50 = statistics.median(timings)
    p95 = _percentile(timings, 95)
    lookup = statistics.median(lookups)
    results = [
        _row("Save to CRM p50", p50, "ms", 2, target="< 25 ms", ok=p50 < 25),
        _row("Save to CRM p95", p95, "ms", 2, target="< 60 ms", ok=p95 < 60),
        _row(
            f"matching lookup p50 ({bulk_items * 2:,} identities)",
            lookup,
            "ms",
            3,
            statements=lookup_sql,
            target="< 2 ms",
            ok=lookup < 2,
        ),
        _row("matching lookup p95", _percentile(lookups, 95), "ms", 3),
    ]
    for name, url, limit in (
        (f"CRM list, first page ({bulk_items:,} items), median", "/console/crm/items/", 150),
        ("CRM list, deep keyset page, median", f"/console/crm/items/?after={deep}", 150),
        ("CRM list, phone search, median", "/console/crm/items/?q=%2B49+30+1000123", 300),
        (
            "CRM list, contacts with consent, median",
            "/console/crm/items/?kind=contact&consent=given",
            300,
        ),
        ("CRM list, no consent, median", "/console/crm/items/?consent=none", 300),
    ):
        ms, statements = page(url)
        results.append(
            _row(name, ms, "ms", 1, statements=statements, target=f"< {limit} ms", ok=ms < limit)
        )
    return results
