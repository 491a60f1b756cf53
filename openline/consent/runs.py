"""Stored verification runs: started from the console, run by a worker, shown with progress.

``VerificationRun`` is operational state (not evidence): it records who asked for a
verification, how far it got and what it found, and carries the sealer's alerts, so
the console can warn administrators and auditors when the registry has a problem.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from openline.consent.models import VerificationRun, VerificationSource, VerificationStatus
from openline.consent.verify import verify_registry
from openline.consent.verify_report import VerifyReport

log = logging.getLogger(__name__)

MAX_STORED_PROBLEMS = 100
ALERT_STATUSES = (VerificationStatus.FAILED, VerificationStatus.ERROR)


def _problems(report: VerifyReport) -> list[dict]:
    return [
        {"kind": p.kind, "record_id": p.record_id, "message": p.message}
        for p in report.problems[:MAX_STORED_PROBLEMS]
    ]


def _finish(run: VerificationRun, report: VerifyReport) -> None:
    run.status = VerificationStatus.PASSED if report.ok else VerificationStatus.FAILED
    run.finished_at = timezone.now()
    run.batches_checked = report.batches
    run.records_checked = report.checked
    run.records_total = report.total_records
    run.unsealed = report.unsealed
    run.problem_count = len(report.problems)
    run.problems = _problems(report)
    run.summary = report.summary()


def record_report(report: VerifyReport) -> VerificationRun | None:
    """Store the result of a ``consent_verify`` run so the console can show (and alert on) it."""
    now = timezone.now()
    run = VerificationRun(created_at=now, source=VerificationSource.COMMAND, started_at=now)
    _finish(run, report)
    try:
        run.save()
    except Exception:  # noqa: BLE001 - the command's own answer matters more than storing it
        log.exception("could not store the verification result")
        return None
    return run


def request_verification(*, actor) -> VerificationRun:
    """Queue a verification of the whole registry for the background worker."""
    from openline.consent.tasks import verify_registry_in_background

    run = VerificationRun.objects.create(
        created_at=timezone.now(),
        source=VerificationSource.CONSOLE,
        requested_by=actor,
        requested_by_label=str(actor),
    )
    transaction.on_commit(lambda: verify_registry_in_background.enqueue(run_id=run.pk))
    return run


def execute_run(*, run_id: int) -> VerificationRun | None:
    """Verify the whole registry for a queued run, storing progress as it goes."""
    run = VerificationRun.objects.filter(pk=run_id).first()
    if run is None or run.finished:
        return run
    run.status = VerificationStatus.RUNNING
    run.started_at = timezone.now()
    run.save(update_fields=["status", "started_at"])

    def progress(report: VerifyReport) -> None:
        VerificationRun.objects.filter(pk=run_id).update(
            batches_checked=report.batches,
            records_checked=report.checked,
            records_total=report.total_records,
            problem_count=len(report.problems),
        )

    try:
        report = verify_registry(progress=progress)
    except Exception as exc:
        log.exception("registry verification %s could not finish", run_id)
        run.refresh_from_db()
        run.status = VerificationStatus.ERROR
        run.finished_at = timezone.now()
        run.summary = f"Verification could not finish: {type(exc).__name__}."
        run.save()
        return run
    run.refresh_from_db()
    _finish(run, report)
    run.save()
    return run


def latest_alert() -> VerificationRun | None:
    """Return the newest finished verification (or sealer alert) if it found a problem."""
    latest = (
        VerificationRun.objects.filter(
            status__in=(
                VerificationStatus.PASSED,
                VerificationStatus.FAILED,
                VerificationStatus.ERROR,
            )
        )
        .order_by("-finished_at", "-id")
        .first()
    )
    if latest is not None and latest.status in ALERT_STATUSES:
        return latest
    return None
