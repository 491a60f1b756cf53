from django.apps import AppConfig


class LivechatConfig(AppConfig):
    name = "openline.livechat"
    label = "livechat"

    def ready(self) -> None:
        from openline.crm.signals import retention_run

        retention_run.connect(_purge_start_keys, dispatch_uid="openline.livechat.start_keys")


def _purge_start_keys(sender, **kwargs) -> None:
    import logging

    from openline.livechat.flows import purge_start_keys

    deleted = purge_start_keys()
    if deleted:
        logging.getLogger(__name__).info("purged %d expired chat start keys", deleted)
