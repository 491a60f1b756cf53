"""Background work of the CRM (django-tasks; run by ``manage.py db_worker``)."""

from __future__ import annotations

from django_tasks import task


@task()
def purge_unconfirmed_task() -> dict:
    """Delete messenger clients awaiting consent past their channel's retention period."""
    from openline.crm.awaiting import purge_unconfirmed
    from openline.crm.signals import retention_run

    deleted = purge_unconfirmed()
    retention_run.send(sender=purge_unconfirmed_task)
    return {"deleted": deleted}
