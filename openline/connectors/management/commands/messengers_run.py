"""Run the messenger background loop: Telegram pollers and the periodic sweeps.

The sweeps pick up work whose task was lost (a killed worker leaves its django-tasks row
"running" for ever): leftover inbound events, due outbox items, stale sends (marked uncertain,
never resent), due webhook deliveries (their claim is a lease that expires), unsealed
consent records and console verifications whose worker stopped.

Several of these may run at once (several hosts): a poller runs only under its connector's
lease, events are processed under the Connector's row lock, outbox items are claimed by a
conditional UPDATE, and the hourly retention job is enqueued once per hour across processes.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.utils import timezone

from openline.connectors import polling

log = logging.getLogger("openline.connectors.run")

PURGE_EVERY = dt.timedelta(hours=1)
# Events and outbox items younger than this are left to the task their commit enqueued.
LEFTOVER_AFTER = dt.timedelta(seconds=3)
# Consent records unsealed this long were missed by their sealing task (it runs within ~1 s).
SEAL_LEFTOVER_AFTER = dt.timedelta(seconds=10)


class Command(BaseCommand):
    help = "Poll Telegram bots in long-polling mode and process leftover messenger work."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between sweeps")
        parser.add_argument(
            # Short enough that a stopping process (serve gives 10 s) ends its poll and
            # releases the lease, so another host takes over at once.
            "--poll-timeout",
            type=float,
            default=8.0,
            help="getUpdates long-poll seconds",
        )
        parser.add_argument(
            "--uncertain-after",
            type=float,
            default=120.0,
            help="seconds after which a send whose worker died is marked uncertain",
        )
        parser.add_argument(
            "--verify-stalled-after",
            type=float,
            default=300.0,
            help="seconds without progress after which a registry verification is queued again",
        )

    def handle(self, *args, **options) -> None:
        self.interval = max(0.1, options["interval"])
        self.poll_timeout = max(1.0, options["poll_timeout"])
        self.uncertain_after = max(1.0, options["uncertain_after"])
        self.verify_stalled_after = dt.timedelta(seconds=max(1.0, options["verify_stalled_after"]))
        self.owner = polling.new_owner()
        self.stop = threading.Event()
        self.pollers: dict[int, threading.Thread] = {}
        self.last_purge_check = 0.0
        self.last_purge_at = 0.0
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop.set())
        log.info("messengers_run started as %s", self.owner)
        try:
            while not self.stop.is_set():
                self.round()
                self.stop.wait(self.interval)
        finally:
            self.stop.set()
            for thread in list(self.pollers.values()):
                thread.join(timeout=self.poll_timeout + 15)

    def round(self) -> None:
        """One pass of the periodic work; a failing step never stops the loop."""
        close_old_connections()
        steps = (
            self.start_pollers,
            self.process_leftovers,
            self.send_due,
            self.reap,
            self.webhooks,
            self.seal,
            self.verifications,
        )
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - logged; tried again next round
                log.exception("messengers_run: %s failed", step.__name__)
        try:
            self.schedule_purge()
        except Exception:  # noqa: BLE001
            log.exception("messengers_run: scheduling the retention job failed")

    # ----- Telegram long polling ---------------------------------------------------------

    @property
    def lease_seconds(self) -> float:
        # Longer than one long poll plus the HTTP timeout, so a healthy owner always renews.
        return self.poll_timeout * 2 + 15

    def start_pollers(self) -> None:
        for cid, thread in list(self.pollers.items()):
            if not thread.is_alive():
                del self.pollers[cid]
        for cid in polling.polling_connectors().values_list("pk", flat=True):
            if cid in self.pollers:
                continue
            if polling.acquire(
                connector_id=cid, owner=self.owner, lease_seconds=self.lease_seconds
            ):
                thread = threading.Thread(
                    target=self.poller, args=(cid,), name=f"poller-{cid}", daemon=True
                )
                self.pollers[cid] = thread
                thread.start()

    def poller(self, cid: int) -> None:
        """Poll one bot while this process holds its lease."""
        from openline.connectors.base import TransportError

        try:
            while not self.stop.is_set():
                if not polling.acquire(
                    connector_id=cid, owner=self.owner, lease_seconds=self.lease_seconds
                ):
                    return  # the lease went to another process, or the bot stopped polling
                try:
                    polling.poll_once(connector_id=cid, owner=self.owner, timeout=self.poll_timeout)
                except polling.LeaseLost:
                    return
                except TransportError as exc:
                    wait = exc.retry_after or (30.0 if exc.permanent else 3.0)
                    polling.record_error(connector_id=cid, error=exc.message)
                    self.stop.wait(min(wait, 60.0))
                except Exception:  # noqa: BLE001 - e.g. the database was briefly away
                    log.exception("poller for connector %s failed", cid)
                    self.stop.wait(3.0)
        finally:
            try:
                polling.release(connector_id=cid, owner=self.owner)
            finally:
                connection.close()

    # ----- sweeps ------------------------------------------------------------------------

    def process_leftovers(self) -> None:
        from openline.connectors.ingest import process_pending

        process_pending(received_before=timezone.now() - LEFTOVER_AFTER)

    def send_due(self) -> None:
        from openline.connectors.sender import send_item
        from openline.conversations.outbox import due_items

        deadline = time.monotonic() + max(self.interval, 5.0)
        for item_id in due_items(limit=100):
            # claim() inside send_item lets exactly one process send each item.
            send_item(item_id=item_id)
            if self.stop.is_set() or time.monotonic() > deadline:
                return

    def reap(self) -> None:
        from openline.conversations.outbox import reap_stale

        reap_stale(older_than_seconds=self.uncertain_after)

    def webhooks(self) -> None:
        """Send due outgoing webhooks (retries, and any whose commit-time task was lost)."""
        from openline.webhooks.delivery import deliver_due

        deliver_due(limit=100, budget=max(self.interval, 5.0))

    def seal(self) -> None:
        """Seal consent records whose sealing task was lost (its worker was killed mid-run)."""
        from openline.consent.sealing import seal_leftovers

        seal_leftovers(older_than=SEAL_LEFTOVER_AFTER)

    def verifications(self) -> None:
        """Queue again registry verifications whose worker was killed (or whose task was lost)."""
        from openline.consent.runs import resume_stalled_runs

        resume_stalled_runs(stalled_after=self.verify_stalled_after)

    def schedule_purge(self) -> None:
        """Enqueue the unconfirmed-clients retention job once an hour (across processes)."""
        if time.monotonic() - self.last_purge_check < 60 and self.last_purge_check:
            return
        self.last_purge_check = time.monotonic()
        from django_tasks_db.backend import DatabaseBackend
        from django_tasks_db.models import DBTaskResult

        from openline.crm.tasks import purge_unconfirmed_task

        if isinstance(purge_unconfirmed_task.get_backend(), DatabaseBackend):
            recent = DBTaskResult.objects.filter(
                task_path=purge_unconfirmed_task.module_path,
                enqueued_at__gte=timezone.now() - PURGE_EVERY,
            )
            # Two processes may both enqueue in the same second: the job is idempotent.
            if recent.exists():
                return
        elif (
            self.last_purge_at
            and time.monotonic() - self.last_purge_at < PURGE_EVERY.total_seconds()
        ):
            return
        self.last_purge_at = time.monotonic()
        purge_unconfirmed_task.enqueue()
