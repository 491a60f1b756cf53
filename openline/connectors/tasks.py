"""Background work of the messenger connectors (django-tasks; run by ``manage.py db_worker``)."""

from __future__ import annotations

import datetime as dt
import logging

from django.db.models import Q
from django_tasks import task

log = logging.getLogger(__name__)


@task()
def process_inbound(connector_id: int | None = None) -> dict:
    """Process a connector's stored inbound events (all connectors when ``connector_id`` is None)."""
    from openline.connectors.ingest import process_pending

    outcome = process_pending(connector_id=connector_id)
    if outcome.retry_at is not None:
        # A failed event waits for its back-off; look again then (the sweep would, later).
        kick(connector_id, run_after=outcome.retry_at)
    return {"done": outcome.done, "failed": outcome.failed}


def _already_queued(connector_id: int | None, run_after: dt.datetime | None) -> bool:
    """Tell whether a not-yet-started processing task for this connector will run in time."""
    from django.utils import timezone
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult, get_date_max

    if not isinstance(process_inbound.get_backend(), DatabaseBackend):
        return False
    when = run_after or timezone.now()
    # A READY task sees every event committed before it starts: it covers this one too.
    return (
        DBTaskResult.objects.filter(
            status="READY",
            task_path=process_inbound.module_path,
            args_kwargs__kwargs__connector_id=connector_id,
        )
        .filter(Q(run_after=get_date_max()) | Q(run_after__lte=when))
        .exists()
    )


def kick(connector_id: int | None, *, run_after: dt.datetime | None = None) -> None:
    """Enqueue processing for a connector, unless one queued and not started already covers it."""
    try:
        if _already_queued(connector_id, run_after):
            return
        runner = (
            process_inbound if run_after is None else process_inbound.using(run_after=run_after)
        )
        runner.enqueue(connector_id=connector_id)
    except Exception:  # noqa: BLE001 - the events are stored; messengers_run's sweep processes them
        log.exception("could not enqueue inbound processing for connector %s", connector_id)
