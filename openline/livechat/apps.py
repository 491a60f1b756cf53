from django.apps import AppConfig


class LivechatConfig(AppConfig):
    name = "openline.livechat"
    label = "livechat"
