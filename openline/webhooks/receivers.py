"""Signal receivers: turn changes in the apps below into outbox rows (inside their transaction)."""

from __future__ import annotations

from django.utils import timezone

from openline.webhooks import events
from openline.webhooks.outbox import emit


def on_record_written(sender, *, record, **kwargs) -> None:
    event_type, data, order_key = events.consent_data(record)
    emit(event_type, data, order_key=order_key)


def on_checkpoint_issued(sender, *, checkpoint, **kwargs) -> None:
    emit(events.REGISTRY_CHECKPOINT, events.checkpoint_data(checkpoint), order_key="registry")


def on_conversation_started(sender, *, conversation, **kwargs) -> None:
    emit(
        events.CONVERSATION_STARTED,
        events.conversation_data(conversation),
        order_key=f"conversation:{conversation.pk}",
    )


def on_conversation_closed(sender, *, conversation, **kwargs) -> None:
    emit(
        events.CONVERSATION_CLOSED,
        events.conversation_data(conversation),
        order_key=f"conversation:{conversation.pk}",
    )


def on_message_stored(sender, *, message, conversation, **kwargs) -> None:
    event_type, data = events.message_data(message, conversation)
    emit(event_type, data, order_key=f"conversation:{conversation.pk}")


def on_item_created(sender, *, item, **kwargs) -> None:
    emit(events.CRM_ITEM_CREATED, events.crm_item_data(item), order_key=f"crm:{item.pk}")


def on_item_deleted(sender, *, item_id, **kwargs) -> None:
    data = {"item_id": item_id, "deleted_at": events.iso(timezone.now())}
    emit(events.CRM_ITEM_DELETED, data, order_key=f"crm:{item_id}")


def connect() -> None:
    from openline.consent import signals as consent_signals
    from openline.conversations import signals as conversation_signals
    from openline.crm import signals as crm_signals

    uid = "openline.webhooks"
    consent_signals.record_written.connect(on_record_written, dispatch_uid=f"{uid}.record")
    consent_signals.checkpoint_issued.connect(on_checkpoint_issued, dispatch_uid=f"{uid}.cp")
    conversation_signals.conversation_started.connect(
        on_conversation_started, dispatch_uid=f"{uid}.started"
    )
    conversation_signals.conversation_closed.connect(
        on_conversation_closed, dispatch_uid=f"{uid}.closed"
    )
    conversation_signals.message_stored.connect(on_message_stored, dispatch_uid=f"{uid}.message")
    crm_signals.item_created.connect(on_item_created, dispatch_uid=f"{uid}.item_created")
    crm_signals.item_deleted.connect(on_item_deleted, dispatch_uid=f"{uid}.item_deleted")
