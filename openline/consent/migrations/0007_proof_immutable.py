"""Make everything a record's proof depends on unchangeable in the database.

Versions and their texts (the wording a client saw) refuse UPDATE and DELETE like the
records do, and an agreement that versions or records refer to cannot be deleted even
with foreign keys off (a plain sqlite3 connection). A version's author becomes a plain
id (as in the audit history): deleting a user must not try to UPDATE an immutable row.
On SQLite the AlterField rebuilds the versions table, which drops triggers, so the
triggers are installed after it.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from openline.consent import triggers


def install(apps, schema_editor):
    triggers.install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0006_reinstall_triggers"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="agreementversion",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        # No reverse: the registry's migrations are never unapplied (see ConsentConfig).
        migrations.RunPython(install, elidable=False),
    ]
