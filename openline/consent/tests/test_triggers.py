"""The database itself refuses to change or remove registry rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from openline.consent import sealing, triggers
from openline.consent.models import AuditEvent, ConsentRecord, SealBatch

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
    assert ConsentRecord.objects.count() == 1


def test_migrations_installed_the_triggers(db):
    for table in triggers.APPEND_ONLY_TABLES:
        assert triggers.installed(connection, table), table


@pytest.mark.django_db(transaction=True)
def test_transactional_tests_can_flush_and_keep_the_triggers(give):
    # This test commits a record; the suite's flush afterwards must still work,
    # and the next test must find the triggers in place (checked below and by ordering).
    give()
    assert triggers.installed(connection)
    assert _refused("DELETE FROM consent_consentrecord")


@pytest.mark.django_db(transaction=True)
def test_triggers_are_back_after_a_transactional_flush(give):
    assert ConsentRecord.objects.count() == 0  # the previous test's record was flushed
    give()
    assert _refused("DELETE FROM consent_consentrecord")
