from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConsentConfig(AppConfig):
    name = "openline.consent"
    label = "consent"
    verbose_name = "Consent registry"

    def ready(self) -> None:
        from openline.consent.services import on_channel_consent_settings_changed
        from openline.openchannels.signals import consent_settings_changed

        consent_settings_changed.connect(
            on_channel_consent_settings_changed, dispatch_uid="consent-audit-channel-settings"
        )
        post_migrate.connect(
            _ensure_triggers, sender=self, dispatch_uid="consent-append-only-triggers"
        )


def _ensure_triggers(sender, using="default", **kwargs) -> None:
    # Any migration that rebuilds a registry table on SQLite (ALTER via copy) drops its
    # triggers; putting them back after every migrate keeps the guarantee unconditional.
    from django.db import connections

    from openline.consent import triggers

    connection = connections[using]
    tables = set(connection.introspection.table_names())
    present = tuple(t for t in triggers.APPEND_ONLY_TABLES if t in tables)
    if present:
        triggers.install(connection, present)
