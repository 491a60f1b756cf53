"""``manage.py db_worker``: django-tasks' database worker, made to outlive a database outage.

django_tasks_db's worker exits on the first ``OperationalError`` that is not "database is
locked": stopping PostgreSQL for a few seconds would end it, and ``manage.py serve`` stops
every process when one of its children exits. This command (it takes precedence because
``openline.core`` comes before ``django_tasks_db`` in INSTALLED_APPS) runs the same worker,
with the same options, but waits and polls again while the database is down, read-only or full
(``core/unavailable.py`` decides), so the worker goes on by itself once the database is back.
A task interrupted by the outage keeps its row; nothing is run twice because of this.

A task whose row was deleted while it ran (an administrator cleaning the task table, a
database reset under a running worker) cannot be marked done; upstream's worker then dies on
"Save with update_fields did not affect any rows". This one logs it and goes on.
"""

from __future__ import annotations

import contextlib
import logging
import time

from django.db import DatabaseError, connections
from django_tasks_db.management.commands import db_worker as upstream
from django_tasks_db.models import DBTaskResult

from openline.core import unavailable

logger = logging.getLogger("django_tasks_db")

# Seconds between attempts while the database is unavailable.
RETRY_EVERY = 1.0


class OutageProofWorker(upstream.Worker):
    """The upstream worker's loop, started again after a database outage instead of exiting."""

    def run_task(self, db_task_result) -> None:
        try:
            super().run_task(db_task_result)
        except DatabaseError as exc:
            # Only Django's own "no row updated" (not a driver error, not an outage), and only
            # when the row is really gone.
            if type(exc) is not DatabaseError or unavailable.classify(exc) is not None:
                raise
            if DBTaskResult.objects.filter(pk=db_task_result.pk).exists():
                raise
            logger.warning(
                "task worker: task id=%s (%s) was deleted while it ran; going on",
                db_task_result.pk,
                db_task_result.task_path,
            )

    def run(self) -> None:
        down_since: float | None = None
        while self.running:
            try:
                super().run()
                return  # batch mode or max_tasks: the upstream loop ended on purpose
            except Exception as exc:
                reason = unavailable.classify(exc)
                if reason is None or reason == unavailable.REALTIME:
                    raise
                if down_since is None:
                    down_since = time.monotonic()
                    logger.warning(
                        "task worker: database %s (%s); polling again every %.0f s",
                        reason,
                        type(exc).__name__,
                        RETRY_EVERY,
                    )
                # A broken connection is dropped; the next poll opens a fresh one.
                for connection in connections.all(initialized_only=True):
                    with contextlib.suppress(Exception):
                        connection.close()
                time.sleep(RETRY_EVERY)


class Command(upstream.Command):
    help = "Run the database task worker; it waits out database outages instead of exiting."

    def handle(self, *args, **options) -> None:
        # The upstream command builds its worker from the module's ``Worker`` name.
        upstream.Worker = OutageProofWorker  # type: ignore[misc]
        super().handle(*args, **options)
