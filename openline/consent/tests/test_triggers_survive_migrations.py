"""A migration that rebuilds a registry table keeps the database's refusal to rewrite history.

On SQLite, altering a column rebuilds the table (create a copy, copy the rows, drop,
rename), and the rebuilt table has lost its triggers. This test runs real ``migrate``
commands with two throwaway migrations on top of the real ones (widen a record column,
then restore it) and proves that raw UPDATE and DELETE are still refused afterwards.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from openline.consent import triggers

pytestmark = [pytest.mark.dbspecific, pytest.mark.django_db(transaction=True)]

WIDEN = "9001_throwaway_widen_source_id"
RESTORE = "9002_throwaway_restore_source_id"

# Filled in by the throwaway migration: were the triggers still there right after the
# rebuild (before migrate's post_migrate hook put them back)?
SEEN: dict[str, bool] = {}

THROWAWAY = """
from django.db import migrations, models

from openline.consent import triggers
from openline.consent.tests import test_triggers_survive_migrations as probe


def look(apps, schema_editor):
    probe.SEEN["{name}"] = triggers.installed(schema_editor.connection, "consent_consentrecord")


class Migration(migrations.Migration):
    dependencies = [("consent", "{parent}")]
    operations = [
        migrations.AlterField(
            model_name="consentrecord",
            name="source_id",
            field=models.CharField(blank=True, max_length={length}),
        ),
        migrations.RunPython(look, migrations.RunPython.noop),
    ]
"""


@pytest.fixture
def throwaway_migrations(tmp_path: Path, settings):
    """Point the consent app at a package holding its real migrations plus two throwaway ones."""
    real = MigrationLoader(connection, ignore_no_migrations=True)
    (leaf,) = real.graph.leaf_nodes("consent")
    package = f"consent_migrations_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for app, name in real.disk_migrations:
        if app == "consent":
            (folder / f"{name}.py").write_text(
                "from importlib import import_module\n\n"
                f'Migration = import_module("openline.consent.migrations.{name}").Migration\n'
            )
    (folder / f"{WIDEN}.py").write_text(
        textwrap.dedent(THROWAWAY).format(name=WIDEN, parent=leaf[1], length=65)
    )
    (folder / f"{RESTORE}.py").write_text(
        textwrap.dedent(THROWAWAY).format(name=RESTORE, parent=WIDEN, length=64)
    )
    sys.path.insert(0, str(tmp_path))
    settings.MIGRATION_MODULES = {"consent": package}
    SEEN.clear()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[module]
        # Forget the throwaway migrations so later migrate runs see the real history.
        MigrationRecorder(connection).migration_qs.filter(
            app="consent", name__in=[WIDEN, RESTORE]
        ).delete()


def _refused(sql: str) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    except DatabaseError as exc:
        assert "append-only" in str(exc) or "never deleted" in str(exc)
        return True
    return False


def _source_id_length() -> int:
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(
            cursor, "consent_consentrecord"
        )
    column = next(c for c in description if c.name == "source_id")
    return column.display_size or column.internal_size


def test_raw_update_and_delete_are_refused_after_a_migration_rebuilds_the_record_table(
    throwaway_migrations, give
):
    record = give()
    call_command("migrate", "consent", WIDEN, verbosity=0, interactive=False)
    if connection.vendor == "sqlite":
        # The rebuild really dropped the triggers: the guarantee rests on migrate's hook.
        assert SEEN[WIDEN] is False
    assert _source_id_length() == 65
    assert _refused(f"UPDATE consent_consentrecord SET address = 'x' WHERE id = {record.pk}")
    assert _refused(f"DELETE FROM consent_consentrecord WHERE id = {record.pk}")

    call_command("migrate", "consent", verbosity=0, interactive=False)
    assert RESTORE in SEEN
    assert _source_id_length() == 64
    assert _refused(f"UPDATE consent_consentrecord SET address = 'x' WHERE id = {record.pk}")
    assert _refused(f"DELETE FROM consent_consentrecord WHERE id = {record.pk}")
    for table in triggers.guarded_tables():
        assert triggers.installed(connection, table), table
    assert _refused("DELETE FROM consent_agreementtext")
    assert _refused(f"DELETE FROM consent_agreement WHERE id = {record.agreement_id}")
