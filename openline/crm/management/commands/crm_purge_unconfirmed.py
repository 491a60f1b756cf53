"""Delete messenger clients who never confirmed consent, per channel's retention setting."""

from django.core.management.base import BaseCommand

from openline.crm.awaiting import purge_unconfirmed


class Command(BaseCommand):
    help = (
        "Delete the data of messenger clients awaiting consent longer than their Open "
        "Channel's 'Delete unconfirmed clients after (days)' (channels without it are skipped)."
    )

    def handle(self, *args, **options):
        deleted = purge_unconfirmed()
        self.stdout.write(self.style.SUCCESS(f"Deleted {deleted} unconfirmed client(s)."))
