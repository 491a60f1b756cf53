"""Verify registry from the console: a background run with progress, its stored result, alerts."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from openline.consent import runs, sealing, verify
from openline.consent.models import ConsentRecord, VerificationRun
from openline.consent.runs import execute_run

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def sealed(give):
    records = [give(source_id=str(i)) for i in range(5)]
    sealing.seal_pending(batch_size=2)
    return records


def backdate(record: ConsentRecord, **delta) -> ConsentRecord:
    import uuid as uuid_module

    copy = ConsentRecord.objects.get(pk=record.pk)
    copy.pk, copy.uuid = None, uuid_module.uuid4()
    copy.created_at = record.created_at - dt.timedelta(**delta)
    copy._state.adding = True
    copy.save()
    return copy


def test_verify_registry_is_in_the_nav_of_administrators_and_auditors_only(
    admin_client, auditor_client, operator_client
):
    for client in (admin_client, auditor_client):
        page = client.get("/console/registry/")
        assert page.status_code == 200
        assert 'href="/console/registry/">Verify registry</a>' in page.content.decode()
    home = operator_client.get("/console/", follow=True).content.decode()
    assert "Verify registry" not in home
    assert operator_client.get("/console/registry/").status_code == 403
    assert operator_client.post("/console/registry/verify/").status_code == 403


def run_worker_once() -> None:
    """Run ``manage.py db_worker`` as a separate process until the queue is empty."""
    from django.conf import settings

    from openline.testing.server_process import current_database_url

    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "REDIS_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "openline.settings",
            "DATABASE_URL": current_database_url(),
            "OPENLINE_VAR_DIR": str(settings.VAR_DIR),
            "OPENLINE_SECRET_KEY": settings.SECRET_KEY,
            "OPENLINE_LOG_LEVEL": "WARNING",
        }
    )
    subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-reload", "--no-startup-delay"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_an_auditor_verifies_in_a_real_background_worker_and_sees_the_stored_result(
    sealed, auditor_client, auditor
):
    response = auditor_client.post("/console/registry/verify/")
    run = VerificationRun.objects.get(source="console")
    assert (
        response.status_code == 302 and response["Location"] == f"/console/registry/runs/{run.pk}/"
    )
    assert run.status == "queued" and run.requested_by == auditor
    waiting = auditor_client.get(response["Location"]).content.decode()
    assert '<meta http-equiv="refresh" content="2">' in waiting and "Queued" in waiting
    # The django-tasks database worker picks the queued task up, as in production.
    run_worker_once()
    run.refresh_from_db()
    assert run.status == "passed", run.summary
    assert (run.records_checked, run.records_total, run.batches_checked) == (5, 5, 3)
    assert run.summary == "3 batches, 5 sealed records, 0 not sealed yet."
    done = auditor_client.get(response["Location"]).content.decode()
    assert "http-equiv" not in done and "5 of 5 records and 3 seal batches checked" in done
    status = auditor_client.get(f"/console/registry/runs/{run.pk}/status/")
    assert "no-store" in status["Cache-Control"]
    assert status.json()["status"] == "passed" and status.json()["finished"] is True
    listing = auditor_client.get("/console/registry/").content.decode()
    assert "Passed" in listing and "Seal batch #3 · 5 sealed records" in listing


def test_progress_is_stored_while_the_run_goes(sealed, give, monkeypatch, administrator):
    for i in range(4):
        give(source_id=f"pending {i}")
    run = VerificationRun.objects.create(created_at=timezone.now(), requested_by=administrator)
    monkeypatch.setattr(verify, "PROGRESS_EVERY", 2)
    seen = []
    real = runs.verify_registry

    def watched(*, progress, **options):
        def spy(report):
            progress(report)  # the run's own progress writer, then read what it stored
            seen.append(VerificationRun.objects.values_list("status", "records_checked").get())

        return real(progress=spy, **options)

    monkeypatch.setattr(runs, "verify_registry", watched)
    execute_run(run_id=run.pk)
    statuses = {status for status, _ in seen}
    assert statuses == {"running"}
    counts = [count for _, count in seen]
    assert counts == sorted(counts) and counts[-1] >= 6
    run.refresh_from_db()
    assert (run.status, run.records_checked, run.unsealed) == ("passed", 9, 4)


def test_a_failed_run_lists_its_problems_and_says_where_it_stopped(sealed, admin_client):
    backdated = backdate(sealed[-1], days=3)
    run = VerificationRun.objects.create(created_at=timezone.now())
    execute_run(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and run.problem_count == 1
    assert run.problems[0]["record_id"] == backdated.pk
    page = admin_client.get(f"/console/registry/runs/{run.pk}/").content.decode()
    assert str(backdated.uuid) in page and "Problems found" in page


def test_administrators_and_auditors_see_an_alert_when_the_sealer_refuses_a_record(
    sealed, admin_client, auditor_client, operator_client
):
    for client in (admin_client, auditor_client):
        assert "registry-alert" not in client.get("/console/obtained-consents/").content.decode()
    backdated = backdate(sealed[-1], hours=1)
    assert sealing.seal_pending().refused == [backdated.pk]
    for client in (admin_client, auditor_client):
        page = client.get("/console/obtained-consents/").content.decode()
        assert "registry-alert" in page and "Consent registry problem:" in page
        assert f"record {backdated.pk} ({backdated.uuid})" in page
    inbox = operator_client.get("/console/", follow=True).content.decode()
    assert "registry-alert" not in inbox


def test_the_alert_follows_the_latest_stored_verification(sealed, admin_client):
    now = timezone.now()
    VerificationRun.objects.create(
        created_at=now,
        finished_at=now,
        status="failed",
        problems=[{"kind": "altered", "record_id": 1, "message": "record 1 was altered"}],
        problem_count=1,
    )
    assert "record 1 was altered" in admin_client.get("/console/registry/").content.decode()
    # consent_verify stores its result too: a clean run clears the alert.
    call_command("consent_verify", stdout=None)
    assert VerificationRun.objects.filter(source="command", status="passed").exists()
    assert "registry-alert" not in admin_client.get("/console/registry/").content.decode()


def test_console_registry_urls_refuse_methods_they_do_not_serve(admin_client):
    assert admin_client.delete("/console/registry/").status_code == 405
    assert admin_client.get("/console/registry/verify/").status_code == 405
    assert admin_client.get("/console/registry/runs/999999/").status_code == 404
    assert admin_client.get("/console/registry/runs/999999/status/").status_code == 404


@pytest.mark.browser
def test_an_auditor_sees_the_alert_and_verifies_from_the_console_in_a_browser(
    live_asgi, page, give, auditor
):
    from playwright.sync_api import expect

    from openline.conftest import login, screenshot

    records = [give(source_id=str(i)) for i in range(3)]
    sealing.seal_pending()
    backdated = backdate(records[-1], days=2)
    assert sealing.seal_pending().refused == [backdated.pk]
    login(page, live_asgi.url, auditor.username)
    alert = page.locator(".registry-alert")
    assert "Consent registry problem:" in alert.inner_text()
    assert str(backdated.uuid) in alert.inner_text()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Verify registry").click()
    page.get_by_role("button", name="Verify now").click()
    page.wait_for_url("**/console/registry/runs/*/")
    assert page.locator("#run-status").inner_text() == "Queued"
    run_worker_once()
    # The page refreshes itself every 2 s until the run has finished.
    expect(page.locator("#run-status")).to_have_text("Problems found", timeout=15_000)
    assert str(backdated.uuid) in page.locator("#run-problems").inner_text()
    assert "4 of 4 records" in page.locator("#run-progress").inner_text()
    screenshot(page, "verify-registry-problems")


def _stalled_run(administrator, *, status: str, minutes_ago: int) -> VerificationRun:
    long_ago = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return VerificationRun.objects.create(
        created_at=long_ago,
        requested_by=administrator,
        status=status,
        started_at=long_ago if status == "running" else None,
        heartbeat_at=long_ago if status == "running" else None,
    )


def test_a_run_whose_worker_was_killed_is_queued_again_and_finishes(
    sealed, administrator, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    stalled = _stalled_run(administrator, status="running", minutes_ago=30)
    lost = _stalled_run(administrator, status="queued", minutes_ago=30)
    beating = _stalled_run(administrator, status="running", minutes_ago=0)
    waiting = _stalled_run(administrator, status="queued", minutes_ago=0)

    queued = runs.resume_stalled_runs()

    assert sorted(queued) == sorted([stalled.pk, lost.pk])
    tasks = DBTaskResult.objects.filter(task_path__endswith="verify_registry_in_background")
    assert sorted(t.args_kwargs["kwargs"]["run_id"] for t in tasks) == sorted(queued)
    # A second sweep soon after queues nothing again: both were stamped and are "queued".
    for run in (stalled, lost):
        run.refresh_from_db()
        assert run.status == "queued" and run.heartbeat_at is not None
    assert runs.resume_stalled_runs() == []
    assert runs.resume_stalled_runs(stalled_after=dt.timedelta(0)) != []  # the sweep's knob
    for run_id in queued:
        execute_run(run_id=run_id)
    for run in (stalled, lost):
        run.refresh_from_db()
        assert (run.status, run.records_checked) == ("passed", 5)
    for run in (beating, waiting):
        run.refresh_from_db()
        assert run.status in ("running", "queued") and run.finished_at is None


def test_a_run_another_worker_is_running_is_not_verified_twice(sealed, administrator, monkeypatch):
    beating = _stalled_run(administrator, status="running", minutes_ago=0)
    called = []
    real = runs.verify_registry

    def counted(**options):
        called.append(options)
        return real(**options)

    monkeypatch.setattr(runs, "verify_registry", counted)
    run = execute_run(run_id=beating.pk)
    assert called == [] and run is not None and run.status == "running"
    done = execute_run(run_id=_stalled_run(administrator, status="queued", minutes_ago=0).pk)
    assert done is not None and done.status == "passed" and len(called) == 1
    assert execute_run(run_id=done.pk).status == "passed"  # a finished run is left as it is
