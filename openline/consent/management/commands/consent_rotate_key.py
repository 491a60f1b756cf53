"""Start signing checkpoints and receipts with a new key; the old public key stays published."""

from django.core.management.base import BaseCommand

from openline.consent import signing


class Command(BaseCommand):
    help = (
        "Rotate the registry's Ed25519 signing key. The retired key's public half is kept "
        "(and published in /registry/jwks.json), so checkpoints and receipts signed before "
        "still verify."
    )

    def handle(self, *args, **options):
        old = signing.current_key().kid
        new = signing.rotate()
        self.stdout.write(
            self.style.SUCCESS(
                f"Signing key rotated: new key {new.kid}; {old} retired (still verifies)."
            )
        )
