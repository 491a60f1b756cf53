from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "openline.core"
    label = "core"
    verbose_name = "Openline core"
