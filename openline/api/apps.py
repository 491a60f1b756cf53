from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "openline.api"
    label = "api"
