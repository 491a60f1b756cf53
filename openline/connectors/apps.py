from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "openline.connectors"
    label = "connectors"
