"""Background delivery of outgoing webhooks (django-tasks; run by ``manage.py db_worker``).

Each commit that writes outbox rows enqueues ``deliver_webhooks`` (unless one is waiting
already); ``messengers_run`` also sweeps due deliveries every round, so retries happen and
nothing waits for the next change.
"""

from __future__ import annotations

import logging

from django_tasks import task

log = logging.getLogger("openline.webhooks")


@task()
def deliver_webhooks() -> dict:
    """Send every due webhook delivery."""
    from openline.webhooks.delivery import deliver_due

    return {"attempted": deliver_due(limit=500, budget=60.0)}


def _already_queued() -> bool:
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    if not isinstance(deliver_webhooks.get_backend(), DatabaseBackend):
        return False
    # A READY task sees every row committed before it starts: it covers this one too.
    return DBTaskResult.objects.filter(
        status="READY", task_path=deliver_webhooks.module_path
    ).exists()


def kick() -> None:
    """Ask for delivery soon (after a commit wrote outbox rows); never raises."""
    try:
        if not _already_queued():
            deliver_webhooks.enqueue()
    except Exception:  # noqa: BLE001 - the rows are stored; the periodic sweep sends them
        log.exception("could not enqueue webhook delivery")
