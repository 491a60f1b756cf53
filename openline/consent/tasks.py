"""Background work of the consent registry (django-tasks; run by ``manage.py db_worker``)."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.core.cache import cache
from django.utils import timezone
from django_tasks import task

log = logging.getLogger(__name__)

# New records within this window share one sealing run instead of one task each.
SEAL_DELAY = dt.timedelta(seconds=1)
# A checkpoint push that failed (the outside place was down) is tried again after this.
PUSH_RETRY = dt.timedelta(minutes=1)


@task()
def seal_pending_records() -> dict:
    """Seal every record committed so far into Merkle batches."""
    from openline.consent.sealing import seal_pending

    result = seal_pending()
    if result.waiting:
        # A writer is still running; look again shortly rather than block the worker.
        schedule_sealing(force=True)
    if result.batches:
        schedule_checkpoint_push()
    return {"batches": result.batches, "records": result.records, "refused": result.refused}


_last_scheduled = 0.0


def sealing_due() -> bool:
    """True when ``schedule_sealing`` would enqueue a run now (answered from memory)."""
    return time.monotonic() - _last_scheduled >= SEAL_DELAY.total_seconds()


def schedule_sealing(*, force: bool = False) -> None:
    """Enqueue one sealing run a moment from now (at most one per window, per process).

    Called after every committed record. Within a window the process answers from memory, with
    no round trip (a capture must not pay for the sealer): the run enqueued at the window's
    start begins after the window ends, so it seals every record this process committed in
    it. Each process schedules its own runs; concurrent runs are safe (seal_pending).
    """
    global _last_scheduled
    now = time.monotonic()
    if not force:
        if not sealing_due():
            return
        _last_scheduled = now
    try:
        seal_pending_records.using(run_after=timezone.now() + SEAL_DELAY).enqueue()
    except Exception:  # noqa: BLE001 - sealing is retried by the next record or consent_seal
        log.exception("could not enqueue consent sealing")


@task()
def push_registry_checkpoints() -> dict:
    """Copy new signed checkpoints to OPENLINE_CHECKPOINT_PUSH (retried later if it fails)."""
    from openline.consent.checkpoints import push_checkpoints

    pushed = push_checkpoints()
    if not pushed:
        schedule_checkpoint_push(delay=PUSH_RETRY)
    return {"pushed": pushed}


def schedule_checkpoint_push(*, delay: dt.timedelta = dt.timedelta(0)) -> None:
    """Enqueue a checkpoint push, if a push target is configured; never fails the caller."""
    from django.conf import settings

    if not getattr(settings, "OPENLINE_CHECKPOINT_PUSH", ""):
        return
    # One pending push at a time (per process): a failing target must not pile up retries.
    window = max(delay.total_seconds(), SEAL_DELAY.total_seconds())
    if not cache.add("openline:consent:push-scheduled", 1, timeout=window):
        return
    try:
        push_registry_checkpoints.using(run_after=timezone.now() + delay).enqueue()
    except Exception:  # noqa: BLE001 - the next seal pushes again
        log.exception("could not enqueue the registry checkpoint push")


@task()
def verify_registry_in_background(run_id: int) -> dict:
    """Verify the whole registry for a run started from the console."""
    from openline.consent.runs import execute_run

    run = execute_run(run_id=run_id)
    return {"run": run_id, "status": run.status if run else None}
