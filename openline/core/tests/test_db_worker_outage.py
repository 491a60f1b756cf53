"""``manage.py db_worker`` waits out a database outage instead of exiting.

A real worker process on a SQLite database of its own; the database's directory is moved
away (every connection the worker opens fails: "unable to open database file") and back. The
worker must still be running afterwards and run a task enqueued after the outage. Upstream
django_tasks_db's worker exits on that error, and ``manage.py serve`` then stops everything.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

from openline.testing.server_process import ROOT, start_worker

ENQUEUE = (
    "import django; django.setup()\n"
    "from openline.consent.tasks import seal_pending_records\n"
    "print(seal_pending_records.enqueue().id)\n"
)


def _env(url: str, var_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DATABASE_URL=url,
        OPENLINE_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="openline.settings",
        OPENLINE_LOG_LEVEL="ERROR",
    )
    return env


def _status(db: str, task_id: str) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT status FROM django_tasks_database_dbtaskresult WHERE id = ?",
            [task_id.replace("-", "")],
        ).fetchone()
    return row[0] if row else None


def test_the_task_worker_outlives_a_database_outage_and_runs_tasks_after_it(tmp_path):
    home = tmp_path / "db"
    home.mkdir()
    db = home / "openline.sqlite3"
    url = f"sqlite:///{db}"
    env = _env(url, tmp_path / "var")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    worker = start_worker(database_url=url, var_dir=tmp_path / "var", env={"DATABASE_URL": url})
    try:
        time.sleep(1.5)
        away = tmp_path / "away"
        home.rename(away)  # the database is gone: every poll fails
        time.sleep(3)
        alive_during = worker.process.poll() is None
        away.rename(home)
        enqueued = subprocess.run(
            [sys.executable, "-c", ENQUEUE],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        task_id = enqueued.stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _status(str(db), task_id) != "SUCCESSFUL":
            time.sleep(0.2)
        status = _status(str(db), task_id)
        alive_after = worker.process.poll() is None
    finally:
        worker.stop()
    assert alive_during, f"the worker exited during the outage ({worker.process.returncode})"
    assert alive_after
    assert status == "SUCCESSFUL"


def test_a_task_whose_row_was_deleted_while_it_ran_does_not_stop_the_worker(
    transactional_db, monkeypatch, caplog
):
    from django_tasks_db.models import DBTaskResult

    from openline.consent.tasks import seal_pending_records
    from openline.core.management.commands.db_worker import OutageProofWorker

    queued = DBTaskResult.objects.get(pk=seal_pending_records.enqueue().id)
    original = DBTaskResult.set_successful

    def deleted_meanwhile(self, value):
        DBTaskResult.objects.filter(pk=self.pk).delete()  # e.g. the task table cleaned up
        return original(self, value)

    monkeypatch.setattr(DBTaskResult, "set_successful", deleted_meanwhile)
    worker = OutageProofWorker(
        queue_names=["default"],
        interval=0.1,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
    )
    worker.run_task(queued)  # upstream's worker raises DatabaseError here and exits
    assert worker.running and not worker.running_task
    assert "was deleted while it ran" in caplog.text
    assert not DBTaskResult.objects.filter(pk=queued.pk).exists()
