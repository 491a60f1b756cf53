from django.apps import AppConfig


class OpenChannelsConfig(AppConfig):
    name = "openline.openchannels"
    label = "openchannels"
    verbose_name = "Open Channels"

    def ready(self) -> None:
        from django.db.models.signals import m2m_changed, post_save

        from openline.openchannels import registry_hooks, services
        from openline.openchannels.models import OpenChannel

        registry_hooks.connect()

        # Open console websockets follow channel membership (accounts/realtime.py).
        m2m_changed.connect(
            services.on_operators_changed,
            sender=OpenChannel.operators.through,
            dispatch_uid="openchannels-ws-operators",
        )
        post_save.connect(
            services.on_channel_saved, sender=OpenChannel, dispatch_uid="openchannels-ws-new"
        )
