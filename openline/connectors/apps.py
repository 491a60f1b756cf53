from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "openline.connectors"
    label = "connectors"

    def ready(self) -> None:
        from openline.connectors.sender_tasks import dispatch
        from openline.conversations import outbox

        # A committed OutboxItem is handed straight to the worker; the sweep is the backstop.
        outbox.register_dispatcher(dispatch)

        from openline.conversations.erasure import visitor_erased

        visitor_erased.connect(_forget_events, dispatch_uid="connectors.forget_client_events")


def _forget_events(sender, *, channel_id, origin, external_id, **kwargs) -> None:
    """Blank every stored event of an erased client (the payloads name them)."""
    from openline.connectors.ingest import forget_client_events

    forget_client_events(channel_id=channel_id, kind=origin, external_id=external_id)
