from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "openline.webhooks"
    label = "webhooks"
    verbose_name = "Outgoing webhooks"

    def ready(self) -> None:
        # The apps below send signals inside their writing transactions; the outbox rows are
        # written by these receivers, so lower apps never import this one.
        from openline.core import secrets
        from openline.webhooks import receivers, services

        receivers.connect()
        secrets.register_rotator("webhook endpoint secret(s)", services.reencrypt_secrets)
