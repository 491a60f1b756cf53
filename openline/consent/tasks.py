"""Background work of the consent registry (django-tasks; run by ``manage.py db_worker``)."""

from __future__ import annotations

import datetime as dt
import logging

from django.core.cache import cache
from django.utils import timezone
from django_tasks import task

log = logging.getLogger(__name__)

# New records within this window share one sealing run instead of one task each.
SEAL_DELAY = dt.timedelta(seconds=1)


@task()
def seal_pending_records() -> dict:
    """Seal every record committed so far into Merkle batches."""
    from openline.consent.sealing import seal_pending

    result = seal_pending()
    if result.waiting:
        # A writer is still running; look again shortly rather than block the worker.
        schedule_sealing(force=True)
    return {"batches": result.batches, "records": result.records}


def schedule_sealing(*, force: bool = False) -> None:
    """Enqueue one sealing run a moment from now (at most one per window, per process)."""
    if not force and not cache.add(
        "openline:consent:seal-scheduled", 1, timeout=SEAL_DELAY.total_seconds()
    ):
        return
    try:
        seal_pending_records.using(run_after=timezone.now() + SEAL_DELAY).enqueue()
    except Exception:  # noqa: BLE001 - sealing is retried by the next record or consent_seal
        log.exception("could not enqueue consent sealing")
