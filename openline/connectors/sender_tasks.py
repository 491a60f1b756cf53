"""The outbox send task (django-tasks; run by ``manage.py db_worker``)."""

from __future__ import annotations

import logging

from django_tasks import task

log = logging.getLogger(__name__)


@task()
def send_outbox_item(item_id: int) -> dict:
    """Send one outbox item; schedule its retry when the platform asked for one."""
    from openline.connectors.sender import send_item

    outcome = send_item(item_id=item_id)
    if outcome.retry_at is not None:
        schedule_send(item_id, run_after=outcome.retry_at)
    return {"item": item_id, "state": outcome.state}


def schedule_send(item_id: int, *, run_after=None) -> None:
    """Enqueue the send task (at ``run_after``); never fails the caller: the sweep retries."""
    try:
        if run_after is None:
            send_outbox_item.enqueue(item_id)
        else:
            send_outbox_item.using(run_after=run_after).enqueue(item_id)
    except Exception:  # noqa: BLE001 - the periodic sweep picks due items up anyway
        log.exception("could not enqueue outbox item %s", item_id)


def dispatch(item_id: int) -> None:
    """The outbox dispatcher: called after an item is committed, sends it in the worker."""
    schedule_send(item_id)
