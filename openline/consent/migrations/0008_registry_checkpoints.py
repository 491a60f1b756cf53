"""Signed registry checkpoints (append-only, guarded by triggers) and console verification runs."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from openline.consent import triggers

# Named here, not read from triggers.APPEND_ONLY_TABLES: a migration must do the same thing
# whenever it runs, whatever later code adds to that tuple.
TABLES = ("consent_checkpoint",)


def install_triggers(apps, schema_editor):
    triggers.install(schema_editor.connection, tables=TABLES)


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0007_proof_immutable"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Checkpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("batch_number", models.PositiveBigIntegerField(unique=True)),
                ("batch_hash", models.CharField(max_length=64)),
                ("merkle_root", models.CharField(max_length=64)),
                ("record_count", models.PositiveBigIntegerField()),
                ("last_record_id", models.BigIntegerField()),
                ("issued_at", models.DateTimeField()),
                ("kid", models.CharField(max_length=64)),
                ("jws", models.TextField()),
            ],
            options={"ordering": ["-batch_number"]},
        ),
        migrations.CreateModel(
            name="VerificationRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(db_index=True)),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("console", "Console"),
                            ("command", "consent_verify"),
                            ("sealer", "Sealer"),
                        ],
                        default="console",
                        max_length=8,
                    ),
                ),
                ("requested_by_label", models.CharField(blank=True, max_length=200)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("passed", "Passed"),
                            ("failed", "Problems found"),
                            ("error", "Could not finish"),
                        ],
                        default="queued",
                        max_length=8,
                    ),
                ),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("batches_checked", models.PositiveBigIntegerField(default=0)),
                ("records_checked", models.PositiveBigIntegerField(default=0)),
                ("records_total", models.PositiveBigIntegerField(default=0)),
                ("unsealed", models.PositiveBigIntegerField(default=0)),
                ("problem_count", models.PositiveIntegerField(default=0)),
                ("problems", models.JSONField(blank=True, default=list)),
                ("summary", models.TextField(blank=True)),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
        # No reverse: the registry's migrations are never unapplied.
        migrations.RunPython(install_triggers, elidable=False),
    ]
