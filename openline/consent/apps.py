from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "openline.consent"
    label = "consent"
    verbose_name = "Consent registry"

    def ready(self) -> None:
        from openline.consent.services import on_channel_consent_settings_changed
        from openline.openchannels.signals import consent_settings_changed

        consent_settings_changed.connect(
            on_channel_consent_settings_changed, dispatch_uid="consent-audit-channel-settings"
        )
