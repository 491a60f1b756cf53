"""Stored verification runs: started from the console, run by a worker, shown with progress.

``VerificationRun`` is operational state (not evidence): it records who asked for a
verification, how far it got and what it found, and carries the sealer's alerts, so
the console can warn administrators and auditors when the registry has a problem.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import models, transaction
from django.utils import timezone

from openline.consent.models import VerificationRun, VerificationSource, VerificationStatus
from openline.consent.verify import verify_registry
from openline.consent.verify_report import VerifyReport

log = logging.getLogger(__name__)

MAX_STORED_PROBLEMS = 100
ALERT_STATUSES = (VerificationStatus.FAILED, VerificationStatus.ERROR)
# A run with no sign of life for this long lost its worker (progress is stored every 1,000
# records, a few times a second); it is queued again.
STALLED_AFTER = timedelta(minutes=5)


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


def _claim(run_id: int) -> bool:
    """Mark a queued run as running; False when another worker has it or it has ended.

    A conditional UPDATE, so two workers handed the same run (a lost task queued again while
    the first copy still waited in the queue) never both verify it.
    """
    now = timezone.now()
    return bool(
        VerificationRun.objects.filter(pk=run_id, status=VerificationStatus.QUEUED).update(
            status=VerificationStatus.RUNNING, started_at=now, heartbeat_at=now
        )
    )


def execute_run(*, run_id: int) -> VerificationRun | None:
    """Verify the whole registry for a queued run, storing progress as it goes."""
    if not _claim(run_id):
        return VerificationRun.objects.filter(pk=run_id).first()
    run = VerificationRun.objects.get(pk=run_id)

    def progress(report: VerifyReport) -> None:
        VerificationRun.objects.filter(pk=run_id).update(
            batches_checked=report.batches,
            records_checked=report.checked,
            records_total=report.total_records,
            problem_count=len(report.problems),
            heartbeat_at=timezone.now(),
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


def resume_stalled_runs(stalled_after: timedelta = STALLED_AFTER) -> list[int]:
    """Queue again the console runs whose task was lost; return their ids.

    A worker killed mid-verification leaves its run "running" with a heartbeat that stopped;
    a process killed between the commit and the enqueue leaves it "queued" with no task. Both
    are queued again once silent for ``stalled_after`` (a run still waiting behind other tasks
    may be queued twice: ``_claim`` lets only one copy verify). The periodic sweep of
    ``manage.py messengers_run`` calls this.
    """
    from openline.consent.tasks import verify_registry_in_background

    since = timezone.now() - stalled_after
    silent = models.Q(heartbeat_at__lt=since) | models.Q(
        heartbeat_at__isnull=True, created_at__lt=since
    )
    stalled = VerificationRun.objects.filter(
        silent,
        source=VerificationSource.CONSOLE,
        status__in=(VerificationStatus.QUEUED, VerificationStatus.RUNNING),
    )
    queued = []
    for run_id in stalled.values_list("pk", flat=True)[:20]:
        # Back to "queued", stamped: the next sweep waits another ``stalled_after``, and only
        # the sweep that made this change queues the task.
        if not VerificationRun.objects.filter(silent, pk=run_id).update(
            status=VerificationStatus.QUEUED, heartbeat_at=timezone.now()
        ):
            continue
        log.warning("registry verification %s lost its worker; queued again", run_id)
        verify_registry_in_background.enqueue(run_id=run_id)
        queued.append(run_id)
    return queued


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
