from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "openline.consent"
    label = "consent"
    verbose_name = "Consent registry"
