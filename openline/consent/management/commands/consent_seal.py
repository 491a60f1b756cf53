"""Seal every unsealed consent record now (the background worker does this within seconds)."""

from django.core.management.base import BaseCommand

from openline.consent.sealing import seal_pending


class Command(BaseCommand):
    help = "Seal unsealed consent records into hash-chained Merkle batches."

    def add_arguments(self, parser):
        parser.add_argument(
            "--wait", type=float, default=30.0, help="seconds to wait for running writers"
        )

    def handle(self, *args, **options):
        result = seal_pending(wait_timeout=options["wait"])
        if result.waiting:
            self.stderr.write("Writers were still running; nothing sealed. Try again.")
            raise SystemExit(2)
        self.stdout.write(
            self.style.SUCCESS(f"Sealed {result.records} records in {result.batches} new batches.")
        )
