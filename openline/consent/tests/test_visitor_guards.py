"""The visitor rows consent records depend on: never deleted, and their public_id never changes.

Raw SQL through a connection Django does not manage (a plain sqlite3 connection has foreign
keys off; psycopg on PostgreSQL). Erasure keeps working, and so does a migrate that rebuilds
tables on SQLite (the guards are off during every migrate and back after it).
"""

from __future__ import annotations

import uuid

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from openline.consent import visitor_triggers
from openline.consent.models import ConsentRecord
from openline.consent.tests.test_immutable_wording import raw_sql  # noqa: F401 - fixture
from openline.consent.tests.test_triggers_survive_migrations import (  # noqa: F401 - fixture
    WIDEN,
    throwaway_migrations,
)
from openline.conversations import erasure
from openline.conversations.models import Visitor


def _hex(value: uuid.UUID) -> str:
    # How each database stores a UUIDField: char(32) on SQLite, uuid on PostgreSQL.
    return value.hex if connection.vendor == "sqlite" else str(value)


def test_raw_sql_cannot_delete_a_visitor_that_has_consent_records(raw_sql, give):  # noqa: F811
    record = give()
    error = raw_sql(f"DELETE FROM conversations_visitor WHERE id = {record.visitor_id}")
    assert error is not None and "never deleted" in str(error)
    assert raw_sql("DELETE FROM conversations_visitor") is not None
    assert Visitor.objects.filter(pk=record.visitor_id).exists()
    assert ConsentRecord.objects.get(pk=record.pk).visitor_id == record.visitor_id


def test_raw_sql_still_deletes_a_visitor_without_records(raw_sql, give, channel):  # noqa: F811
    give()  # another visitor with a record: the guard looks at this row only
    lone = Visitor.objects.create(origin="livechat", channel=channel)
    assert raw_sql(f"DELETE FROM conversations_visitor WHERE id = {lone.pk}") is None
    assert not Visitor.objects.filter(pk=lone.pk).exists()


def test_raw_sql_cannot_change_a_visitors_public_id(raw_sql, give, channel):  # noqa: F811
    record = give()
    before = Visitor.objects.get(pk=record.visitor_id).public_id
    other = _hex(uuid.uuid4())
    error = raw_sql(
        f"UPDATE conversations_visitor SET public_id = '{other}' WHERE id = {record.visitor_id}"
    )
    assert error is not None and "piiPrincipalId" in str(error)
    # Any visitor: a receipt may be issued for it later.
    lone = Visitor.objects.create(origin="livechat", channel=channel)
    assert raw_sql(f"UPDATE conversations_visitor SET public_id = '{other}' WHERE id = {lone.pk}")
    assert Visitor.objects.get(pk=record.visitor_id).public_id == before
    # Other columns stay writable (last seen, erasure).
    assert (
        raw_sql(f"UPDATE conversations_visitor SET name = 'x' WHERE id = {record.visitor_id}")
        is None
    )


def test_django_connection_is_refused_too(db, give):
    record = give()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM conversations_visitor WHERE id = %s", [record.visitor_id])
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversations_visitor SET public_id = %s WHERE id = %s",
            [_hex(uuid.uuid4()), record.visitor_id],
        )


def test_saving_a_visitor_and_erasing_its_data_keep_working(db, give, administrator):
    record = give()
    visitor = Visitor.objects.get(pk=record.visitor_id)
    public_id = visitor.public_id
    visitor.name = "Ada"
    visitor.save()  # a full save rewrites public_id with the same value: allowed
    erasure.erase_visitor(actor=administrator, visitor=visitor)
    visitor.refresh_from_db()
    assert visitor.erased_at is not None and visitor.public_id == public_id
    assert visitor.name == ""


def test_migrate_runs_without_the_guards_and_puts_them_back(transactional_db, give):
    give()
    assert visitor_triggers.installed(connection)
    seen: list[bool] = []

    from django.db.models.signals import pre_migrate

    def spy(sender, **kwargs):
        seen.append(visitor_triggers.installed(connection))

    # Connected after the consent app's receiver, so it sees what migrations would see.
    pre_migrate.connect(spy, dispatch_uid="test-visitor-guard-spy")
    try:
        call_command("migrate", verbosity=0)
    finally:
        pre_migrate.disconnect(dispatch_uid="test-visitor-guard-spy")
    assert seen and not any(seen[-1:])
    assert visitor_triggers.installed(connection)


@pytest.mark.dbspecific
@pytest.mark.django_db(transaction=True)
def test_a_migration_that_rebuilds_the_record_table_runs_and_the_guards_come_back(
    throwaway_migrations,  # noqa: F811
    give,
):
    # On SQLite the rebuild renames a copy of consent_consentrecord into place, which fails
    # ("no such table") if a trigger naming that table is present: the guards must be off.
    record = give()
    call_command("migrate", "consent", WIDEN, verbosity=0, interactive=False)
    call_command("migrate", "consent", verbosity=0, interactive=False)
    assert visitor_triggers.installed(connection)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM conversations_visitor WHERE id = %s", [record.visitor_id])
