"""Verify the consent registry, optionally against a checkpoint kept outside the database."""

import json

from django.core.management.base import BaseCommand, CommandError

from openline.consent.checkpoints import (
    CheckpointError,
    load_text,
    push_file,
    read_checkpoints,
)
from openline.consent.runs import record_report
from openline.consent.verify import verify_registry


class Command(BaseCommand):
    help = (
        "Verify the consent registry: every record, text hash, Merkle root, batch link and "
        "checkpoint is recomputed; exits 1 naming what was altered, removed, backdated or "
        "inserted out of place. With --checkpoint, also proves the registry still holds "
        "everything that checkpoint covered."
    )

    def add_arguments(self, parser):
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument(
            "--all", action="store_true", help="check everything and list every problem"
        )
        scope.add_argument(
            "--stop-at-first",
            action="store_true",
            help="stop at the first problem (the default)",
        )
        parser.add_argument(
            "--checkpoint",
            metavar="FILE|URL",
            help=(
                "a checkpoint kept outside (JWS, its JSON, or a JSON-lines push file: every "
                "line); by default the file of OPENLINE_CHECKPOINT_PUSH, if it is a path"
            ),
        )
        parser.add_argument(
            "--jwks",
            metavar="FILE|URL",
            help="check the checkpoint's signature with these pinned public keys (JWKS)",
        )

    def handle(self, *args, **options):
        checkpoint = None
        kept = []
        if options["jwks"] and not options["checkpoint"]:
            raise CommandError("--jwks only makes sense with --checkpoint")
        if not options["checkpoint"]:
            configured = push_file()
            if configured is not None and configured.exists():
                options["checkpoint"] = str(configured)
                self.stdout.write(f"Reading the checkpoints pushed to {configured}.")
        if options["checkpoint"]:
            key_set = None
            try:
                if options["jwks"]:
                    try:
                        key_set = json.loads(load_text(options["jwks"]))
                    except ValueError:
                        raise CheckpointError(f"{options['jwks']} is not a JSON key set") from None
                kept = read_checkpoints(load_text(options["checkpoint"]), key_set=key_set)
            except CheckpointError as exc:
                self.stderr.write(self.style.ERROR(f"CHECKPOINT REJECTED: {exc}"))
                raise SystemExit(1) from None
            checkpoint = kept[-1]
            more = f" and {len(kept) - 1} earlier ones" if len(kept) > 1 else ""
            self.stdout.write(
                f"Checkpoint #{checkpoint.batch_number} ({checkpoint.record_count} records, "
                f"issued {checkpoint.issued_at}, key {checkpoint.kid}){more}: signature verified."
            )
        report = verify_registry(
            stop_at_first=not options["all"],
            checkpoint=checkpoint,
            kept=kept,
            use_push_file=False,
        )
        record_report(report)
        summary = report.summary()
        if report.ok:
            self.stdout.write(self.style.SUCCESS(f"Consent registry verified: {summary}"))
            return
        first = report.first_problem
        assert first is not None
        self.stderr.write(self.style.ERROR(f"TAMPERING DETECTED: {first.message}"))
        for problem in report.problems[1:]:
            self.stderr.write(f"  also: {problem.message}")
        self.stderr.write(f"Checked: {summary}")
        raise SystemExit(1)
