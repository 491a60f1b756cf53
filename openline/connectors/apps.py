from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "openline.connectors"
    label = "connectors"

    def ready(self) -> None:
        from openline.connectors.sender_tasks import dispatch
        from openline.conversations import outbox

        # A committed OutboxItem is handed straight to the worker; the sweep is the backstop.
        outbox.register_dispatcher(dispatch)
