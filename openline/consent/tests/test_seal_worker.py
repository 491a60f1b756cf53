"""The sealing task runs in a real ``manage.py db_worker`` process against the test database.

Records are written through the service and committed; the test then watches the task queue
(django-tasks' database backend) and the seal batches the worker writes:

- the seal task is enqueued after commit, never by a transaction that rolls back;
- a burst of records enqueues one task, not one per record;
- the worker seals every committed record, and the registry verifies;
- on PostgreSQL, while a writer still holds its transaction open, the worker does not seal
  past it: the task re-schedules itself, and the next run seals everything once it commits.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection, connections, transaction
from django_tasks_db.models import DBTaskResult

from openline.consent import tasks
from openline.consent.models import ConsentRecord, SealBatch
from openline.testing.server_process import current_database_url

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]
SEAL_TASK = "openline.consent.tasks.seal_pending_records"


@pytest.fixture(autouse=True)
def private_cache(settings, monkeypatch):
    """A cache of this test's own: the de-duplication key must not be shared with other tests."""
    # Each process schedules at most one run a second, from memory: a run an earlier test
    # scheduled a moment ago must not swallow this test's first schedule.
    monkeypatch.setattr(tasks, "_last_scheduled", 0.0)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"seal-worker-{os.getpid()}",
        }
    }
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def worker():
    """Start ``manage.py db_worker`` on the test database; stop it after the test."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "REDIS_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "openline.settings",
            "DATABASE_URL": current_database_url(),
            # The same var/ as the test process: the same signing key, as in one deployment.
            "OPENLINE_VAR_DIR": str(django_settings.VAR_DIR),
            "OPENLINE_SECRET_KEY": django_settings.SECRET_KEY,
            "OPENLINE_LOG_LEVEL": "WARNING",
        }
    )
    process = subprocess.Popen(
        [
            *(sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay"),
            *("--interval", "0.2"),
        ],
        cwd=ROOT,
        env=env,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def seal_tasks():
    return DBTaskResult.objects.filter(task_path=SEAL_TASK).order_by("enqueued_at")


def sealed_count() -> int:
    return sum(SealBatch.objects.values_list("record_count", flat=True))


def wait_for(condition, timeout: float = 30, what: str = "the worker") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def verify() -> int:
    """Run ``manage.py consent_verify`` as an auditor would; return its exit code."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("consent_verify", stdout=out, stderr=err)
    except SystemExit as exc:
        print(out.getvalue(), err.getvalue())
        return int(exc.code or 0)
    return 0


def test_a_rolled_back_record_enqueues_no_seal_task(give):
    with pytest.raises(RuntimeError), transaction.atomic():
        give(source_id="rolled back")
        raise RuntimeError("the request failed after recording")
    assert ConsentRecord.objects.count() == 0
    assert seal_tasks().count() == 0


def test_the_seal_task_is_enqueued_only_when_the_record_commits(give):
    with transaction.atomic():
        give(source_id="pending")
        # Same connection, same transaction: an enqueue made now would be visible here.
        assert seal_tasks().count() == 0
    [task] = seal_tasks()
    assert task.status == "READY"
    assert task.run_after > task.enqueued_at  # a moment later, to gather more records


def test_a_burst_of_records_enqueues_one_task_and_a_real_worker_seals_them_all(
    give, worker, monkeypatch
):
    # A window long enough that the burst surely fits in it on a slow machine.
    monkeypatch.setattr(tasks, "SEAL_DELAY", dt.timedelta(seconds=3))
    for i in range(25):
        give(source_id=f"burst-{i}")
    assert seal_tasks().count() == 1
    wait_for(lambda: sealed_count() == 25, what="the burst to be sealed")
    [task] = seal_tasks()
    wait_for(lambda: seal_tasks().get().status == "SUCCESSFUL", what="the task to finish")
    task.refresh_from_db()
    assert (task.return_value["batches"], task.return_value["records"]) == (1, 25)
    assert verify() == 0
    # After the window, the next record schedules a new run, which the worker also seals.
    time.sleep(3.1)
    give(source_id="late")
    assert seal_tasks().count() == 2
    wait_for(lambda: sealed_count() == 26, what="the late record to be sealed")
    assert verify() == 0


def test_the_worker_reschedules_while_a_writer_holds_its_transaction_open(
    postgres_only, give, worker
):
    inside, release = threading.Event(), threading.Event()

    def slow_writer():
        try:
            with transaction.atomic():
                give(source_id="slow")
                inside.set()
                release.wait(30)
        finally:
            connections.close_all()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert inside.wait(10)
        fast = give(source_id="fast")  # commits with a higher id while the slow one is open
        [first] = seal_tasks()
        # The worker runs the task, waits for the open writer in vain, and re-schedules.
        wait_for(
            lambda: seal_tasks().filter(pk=first.pk, status="SUCCESSFUL").exists(),
            what="the first run to give up waiting",
        )
        first.refresh_from_db()
        assert (first.return_value["batches"], first.return_value["records"]) == (0, 0)
        assert seal_tasks().exclude(pk=first.pk).filter(run_after__gte=first.started_at).exists()
        assert not SealBatch.objects.exists()
    finally:
        release.set()
        writer.join(10)
    slow = ConsentRecord.objects.get(source_id="slow")
    assert slow.pk < fast.pk
    wait_for(lambda: sealed_count() == 2, what="both records to be sealed")
    assert verify() == 0
    assert connection.vendor == "postgresql"
