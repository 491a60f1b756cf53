"""Re-install the append-only triggers: on SQLite, 0005's AlterField rebuilt the records table
(create, copy, drop, rename), and a rebuilt table loses its triggers."""

from django.db import migrations

from openline.consent import triggers


def install(apps, schema_editor):
    triggers.install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("consent", "0005_fewer_record_indexes")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop, elidable=False)]
