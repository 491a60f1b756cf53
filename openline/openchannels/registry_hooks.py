"""How Open Channels plug into the consent registry, which imports no Open Channels.

Connected once from ``OpenChannelsConfig.ready``.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from openline.consent import services as consent_services
from openline.consent import signals as consent_signals
from openline.openchannels import signals
from openline.openchannels.models import OpenChannel


def refuse_deactivating_a_consent_in_use(sender, *, agreement, **kwargs) -> None:
    """Refuse to deactivate a consent that an Open Channel still sends."""
    in_use = list(
        OpenChannel.objects.filter(agreement=agreement, consent_enabled=True).values_list(
            "name", flat=True
        )
    )
    if in_use:
        raise ValidationError(
            f"Open Channels still send this consent: {', '.join(in_use)}. "
            "Choose another consent there first."
        )


def connect() -> None:
    """Register the veto and the audit of channel consent settings with the registry."""
    consent_signals.agreement_deactivating.connect(
        refuse_deactivating_a_consent_in_use, dispatch_uid="openchannels-consent-in-use"
    )
    # The registry keeps the history of every channel's consent settings.
    signals.consent_settings_changed.connect(
        consent_services.on_channel_consent_settings_changed,
        dispatch_uid="consent-audit-channel-settings",
    )
