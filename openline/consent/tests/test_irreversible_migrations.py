"""The consent registry's migrations only go forward: unapplying them would drop the proof."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from openline.consent import triggers
from openline.consent.models import ConsentRecord

REGISTRY_TABLES = (
    "consent_agreement",
    "consent_agreementversion",
    "consent_agreementtext",
    "consent_consentrecord",
    "consent_sealbatch",
    "consent_auditevent",
)


def _applied_consent_migrations() -> set[str]:
    return {
        name for app, name in MigrationRecorder(connection).applied_migrations() if app == "consent"
    }


def _assert_registry_intact(record: ConsentRecord, applied: set[str]) -> None:
    tables = set(connection.introspection.table_names())
    assert set(REGISTRY_TABLES) <= tables
    assert ConsentRecord.objects.filter(pk=record.pk).exists()
    assert _applied_consent_migrations() == applied
    assert triggers.installed(connection, "consent_consentrecord")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("app", "target"),
    [
        ("consent", "zero"),
        ("consent", "0006_reinstall_triggers"),
        ("consent", "0001_initial"),
        # Unapplying an app the registry depends on would unapply the registry too.
        ("conversations", "zero"),
    ],
)
def test_migrating_the_registry_backwards_is_refused_and_drops_nothing(give, app, target):
    record = give()
    applied = _applied_consent_migrations()
    assert "0001_initial" in applied
    with pytest.raises(CommandError, match="Refusing to unapply the consent registry"):
        call_command("migrate", app, target, verbosity=0, interactive=False)
    _assert_registry_intact(record, applied)


@pytest.mark.django_db(transaction=True)
def test_the_refusal_names_the_migrations_it_would_have_unapplied(give):
    record = give()
    applied = _applied_consent_migrations()
    with pytest.raises(CommandError) as refused:
        call_command("migrate", "consent", "zero", verbosity=0, interactive=False)
    assert "consent.0001_initial" in str(refused.value)
    assert "write a new migration instead" in str(refused.value)
    _assert_registry_intact(record, applied)


@pytest.mark.django_db(transaction=True)
def test_migrating_forward_is_still_allowed_and_keeps_the_triggers(give):
    record = give()
    applied = _applied_consent_migrations()
    call_command("migrate", verbosity=0, interactive=False)
    _assert_registry_intact(record, applied)
    for table in triggers.guarded_tables():
        assert triggers.installed(connection, table), table
