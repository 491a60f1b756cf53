"""Background delivery of outgoing webhooks (django-tasks; run by ``manage.py db_worker``).

Each commit that writes outbox rows enqueues ``deliver_webhooks`` (unless one is waiting
already); ``messengers_run`` also sweeps due deliveries every round, so retries happen and
nothing waits for the next change.
"""

from __future__ import annotations

import asyncio
import logging
import threading

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


_soon_lock = threading.Lock()
_soon_running = False
_soon_again = False


def kick_soon() -> None:
    """``kick`` from an event loop after a commit, in a worker thread; the loop never waits.

    At most one kick per process is in flight; commits made meanwhile ask for one more after
    it, so every committed row is covered and a burst of commits costs a kick or two.
    """
    global _soon_running, _soon_again
    with _soon_lock:
        if _soon_running:
            _soon_again = True
            return
        _soon_running = True
    asyncio.get_running_loop().run_in_executor(None, _kick_until_done)


def _kick_until_done() -> None:
    global _soon_running, _soon_again
    from django.db import close_old_connections

    close_old_connections()
    try:
        while True:
            with _soon_lock:
                _soon_again = False
            kick()
            with _soon_lock:
                if not _soon_again:
                    _soon_running = False
                    return
    finally:
        with _soon_lock:
            _soon_running = False
        close_old_connections()
