from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The staff console's shell and the pages that join the registry with Open Channels."""

    name = "openline.console"
    label = "console"
    verbose_name = "Console"
