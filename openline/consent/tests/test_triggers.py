"""The database itself refuses to change or remove registry rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import TransactionTestCase

from openline.consent import sealing, services, triggers
from openline.consent.models import (
    Agreement,
    AgreementText,
    AgreementVersion,
    AuditEvent,
    ConsentMethod,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
    SealBatch,
    SourceType,
)
from openline.conversations.models import Visitor

pytestmark = pytest.mark.dbspecific


def _refused(sql: str, params=()) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    except DatabaseError as exc:
        assert "append-only" in str(exc)
        return True
    return False


def test_raw_sql_cannot_delete_or_update_a_consent_record(give):
    record = give()
    assert _refused("DELETE FROM consent_consentrecord WHERE id = %s", [record.pk])
    assert _refused("DELETE FROM consent_consentrecord")
    assert _refused("UPDATE consent_consentrecord SET address = 'x' WHERE id = %s", [record.pk])
    assert ConsentRecord.objects.get(pk=record.pk).address == "https://example.com/pricing"


def test_raw_sql_cannot_change_seals_or_audit_history(give, agreement):
    give()
    sealing.seal_pending()
    assert SealBatch.objects.exists() and AuditEvent.objects.exists()
    assert _refused("UPDATE consent_sealbatch SET merkle_root = 'x'")
    assert _refused("DELETE FROM consent_sealbatch")
    assert _refused("UPDATE consent_auditevent SET actor_label = 'x'")
    assert _refused("DELETE FROM consent_auditevent")


def test_truncate_is_refused_on_postgresql(postgres_only, give):
    give()
    with connection.cursor() as cursor:
        # Django's deferred foreign-key checks would otherwise block TRUNCATE by themselves.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert _refused("TRUNCATE consent_consentrecord CASCADE")
    assert _refused("TRUNCATE consent_auditevent")
    assert _refused("TRUNCATE consent_agreementtext")
    assert _refused("TRUNCATE consent_agreementversion CASCADE")
    assert ConsentRecord.objects.count() == 1


def test_migrations_installed_the_triggers(db):
    for table in triggers.guarded_tables():
        assert triggers.installed(connection, table), table


def _record_without_fixtures() -> ConsentRecord:
    """Write a record from scratch (the function-scoped fixtures' rows are flushed)."""
    from openline.openchannels.services import create_open_channel

    agreement = services.create_agreement(
        actor=None, name="After the flush", text="We keep your e-mail.", allow_html=False
    )
    channel = create_open_channel(
        actor=None,
        name="After the flush",
        operators=[],
        connectors=["livechat"],
        consent_enabled=True,
        agreement=agreement,
    )
    visitor = Visitor.objects.create(origin="livechat", channel=channel, name="Fiona")
    return services.record_consent(
        visitor=visitor,
        version=agreement.current_version,
        language="en",
        state=ConsentState.GIVEN,
        method=ConsentMethod.CLICKED_ACCEPT,
        origin=ConsentOrigin.LIVECHAT,
        source_type=SourceType.WEBSITE,
        address="https://example.com/after",
        channel=channel,
    )


@pytest.mark.django_db(transaction=True)
def test_the_suites_flush_empties_the_registry_and_puts_every_trigger_back(give):
    # Self-contained: commit registry rows, run the very teardown every transactional test
    # ends with (patched in openline/conftest.py), then prove the triggers still refuse.
    give()
    sealing.seal_pending()
    TransactionTestCase()._fixture_teardown()
    for model in (ConsentRecord, SealBatch, AuditEvent, AgreementText, AgreementVersion, Agreement):
        assert not model.objects.exists(), model
    for table in triggers.guarded_tables():
        assert triggers.installed(connection, table), table
    record = _record_without_fixtures()
    assert _refused("DELETE FROM consent_consentrecord")
    assert _refused(f"UPDATE consent_consentrecord SET address = 'x' WHERE id = {record.pk}")
    assert _refused("UPDATE consent_agreementtext SET rendered_html = 'x'")
    assert _refused("DELETE FROM consent_agreementversion")
    assert ConsentRecord.objects.get(pk=record.pk).address == "https://example.com/after"
