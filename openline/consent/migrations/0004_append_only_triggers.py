"""Make consent records, seals and the audit history append-only in the database itself.

SQLite and PostgreSQL get different SQL (see openline/consent/triggers.py); both abort
UPDATE and DELETE, and PostgreSQL also aborts TRUNCATE.
"""

from django.db import migrations

from openline.consent import triggers


def install(apps, schema_editor):
    triggers.install(schema_editor.connection)


def drop(apps, schema_editor):
    triggers.drop(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("consent", "0003_registry_seals_audit")]

    operations = [migrations.RunPython(install, drop, elidable=False)]
