from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "openline.crm"
    label = "crm"
