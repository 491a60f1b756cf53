"""Re-encrypt every connector's credentials with the newest key.

File mode (no OPENLINE_SECRETS_KEYS): a new key is put first in the key file, the old keys
stay after it so every token stays readable while the command runs (and for processes that
have not re-read the file yet); ``--drop-old-keys`` removes them once everything is rotated.
Environment mode: put the new key first in OPENLINE_SECRETS_KEYS, run this, then remove the
old key from the environment.
"""

from __future__ import annotations

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from openline.core import secrets
from openline.openchannels.models import Connector


class Command(BaseCommand):
    help = "Rotate the key that encrypts messenger credentials and re-encrypt them all."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--drop-old-keys",
            action="store_true",
            help="File mode: remove the old keys from the key file after re-encrypting.",
        )

    def handle(self, *args, drop_old_keys: bool = False, **options) -> None:
        from_env = secrets.keys_from_environment()
        old_keys = secrets.current_keys()
        if from_env:
            if drop_old_keys:
                raise CommandError(
                    "--drop-old-keys only applies to the key file; remove old keys from "
                    "OPENLINE_SECRETS_KEYS yourself after this command."
                )
            self.stdout.write("Using the first key of OPENLINE_SECRETS_KEYS.")
        else:
            secrets.replace_key_file([Fernet.generate_key(), *old_keys])
            secrets.forget_cached_keys()
            self.stdout.write(f"New key added first to {secrets.key_file()}.")
        rotated = 0
        for pk in Connector.objects.exclude(secrets="").values_list("pk", flat=True):
            # One row at a time, locked: a concurrent "Save" on the connector page either
            # happens before (and is rotated here) or after (already with the new key).
            with transaction.atomic():
                connector = Connector.objects.select_for_update().get(pk=pk)
                if not connector.secrets:
                    continue
                try:
                    connector.secrets = secrets.rotate_token(connector.secrets)
                except secrets.SecretsError as exc:
                    raise CommandError(f"{connector}: {exc}") from None
                connector.save(update_fields=["secrets", "updated_at"])
                rotated += 1
        others = []
        for label, rotate in secrets.rotators():
            try:
                others.append(f"{rotate()} {label}")
            except secrets.SecretsError as exc:
                raise CommandError(f"{label}: {exc}") from None
        if drop_old_keys and not from_env:
            secrets.replace_key_file(secrets.current_keys()[:1])
            secrets.forget_cached_keys()
            self.stdout.write("Old keys removed from the key file.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted the credentials of {rotated} connector(s)"
                + "".join(f", {other}" for other in others)
                + "."
            )
        )
