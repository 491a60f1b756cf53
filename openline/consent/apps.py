from django.apps import AppConfig
from django.core.management.base import CommandError
from django.db.models.signals import post_migrate, pre_migrate


class ConsentConfig(AppConfig):
    name = "openline.consent"
    label = "consent"
    verbose_name = "Consent registry"

    def ready(self) -> None:
        from openline.consent import signing
        from openline.core.readiness import register_check

        # Every receipt and checkpoint is signed with it: a lost or broken key is not ready.
        register_check("signing_key", signing.current_key, failure="unavailable")
        pre_migrate.connect(
            refuse_backwards_migrations, sender=self, dispatch_uid="consent-irreversible-migrations"
        )
        pre_migrate.connect(
            _drop_visitor_guards, sender=self, dispatch_uid="consent-visitor-guards-off"
        )
        post_migrate.connect(
            _ensure_triggers, sender=self, dispatch_uid="consent-append-only-triggers"
        )


IRREVERSIBLE_MESSAGE = (
    "Refusing to unapply the consent registry's migrations ({names}): that would drop or "
    "rewrite the registry of consent proof. Consent migrations only go forward; "
    "write a new migration instead."
)


def refuse_backwards_migrations(sender, plan=None, **kwargs) -> None:
    """Stop any migrate whose plan would unapply a consent migration, before anything runs."""
    # pre_migrate fires after the plan is made and before its first step, so raising here
    # leaves every table (and every other app's migrations) untouched.
    backwards = [
        f"{migration.app_label}.{migration.name}"
        for migration, is_backwards in plan or ()
        if is_backwards and migration.app_label == sender.label
    ]
    if backwards:
        raise CommandError(IRREVERSIBLE_MESSAGE.format(names=", ".join(backwards)))


def _ensure_triggers(sender, using="default", **kwargs) -> None:
    # Any migration that rebuilds a registry table on SQLite (ALTER via copy) drops its
    # triggers; putting them back after every migrate keeps the guarantee unconditional.
    from django.db import connections

    from openline.consent import triggers, visitor_triggers

    triggers.install(connections[using])
    visitor_triggers.install(connections[using])


def _drop_visitor_guards(sender, using="default", **kwargs) -> None:
    # They look up another table, which SQLite's table rebuilds cannot stand: no migration
    # ever runs with them; post_migrate puts them back (see visitor_triggers).
    from django.db import connections

    from openline.consent import visitor_triggers

    visitor_triggers.drop(connections[using])
