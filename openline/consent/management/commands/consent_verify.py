"""Recompute every seal of the consent registry and report the first problem found."""

from django.core.management.base import BaseCommand

from openline.consent.sealing import verify_registry


class Command(BaseCommand):
    help = (
        "Verify the consent registry: every record, Merkle root and batch link is recomputed; "
        "exits non-zero naming the first record altered, removed or inserted out of place."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all", action="store_true", help="list every problem, not only the first"
        )

    def handle(self, *args, **options):
        report = verify_registry(stop_at_first=not options["all"])
        summary = f"{report.batches} batches, {report.records} sealed records, {report.unsealed} not sealed yet."
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
