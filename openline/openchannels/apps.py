from django.apps import AppConfig


class OpenChannelsConfig(AppConfig):
    name = "openline.openchannels"
    label = "openchannels"
    verbose_name = "Open Channels"
