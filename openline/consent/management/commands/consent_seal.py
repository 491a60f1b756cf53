"""Seal every unsealed consent record now (the background worker does this within seconds)."""

from django.core.management.base import BaseCommand

from openline.consent.checkpoints import push_checkpoints
from openline.consent.sealing import seal_pending


class Command(BaseCommand):
    help = (
        "Seal unsealed consent records into hash-chained Merkle batches, sign a checkpoint per "
        "batch and copy new checkpoints to OPENLINE_CHECKPOINT_PUSH."
    )

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
        if result.refused:
            ids = ", ".join(str(i) for i in result.refused)
            self.stderr.write(
                self.style.ERROR(
                    f"Refused {len(result.refused)} record(s) dated before records already "
                    f"sealed (backdated or out of order): {ids}. consent_verify names them."
                )
            )
        if not push_checkpoints():
            self.stderr.write("Could not copy checkpoints to OPENLINE_CHECKPOINT_PUSH (see log).")
