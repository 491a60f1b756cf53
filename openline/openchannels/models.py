"""Open Channels and their connector configurations."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from openline.core.ids import public_code


class ConnectorKind(models.TextChoices):
    LIVECHAT = "livechat", "Live chat"
    TELEGRAM = "telegram", "Telegram"
    WHATSAPP = "whatsapp", "WhatsApp"
    FACEBOOK = "facebook", "Facebook Messenger"
    VIBER = "viber", "Viber"


CONNECTOR_DESCRIPTIONS = {
    ConnectorKind.LIVECHAT: "A chat widget on your website, added with one script tag.",
    ConnectorKind.TELEGRAM: "Answer clients who write to your Telegram bot.",
    ConnectorKind.WHATSAPP: "Answer clients on your WhatsApp Business number.",
    ConnectorKind.FACEBOOK: "Answer clients who message your Facebook Page.",
    ConnectorKind.VIBER: "Answer clients who write to your Viber bot.",
}


class CrmItemKind(models.TextChoices):
    LEAD = "lead", "Lead"
    CONTACT = "contact", "Contact"


class OpenChannel(models.Model):
    """A set of connectors answered by the same operators under the same consent rules."""

    name = models.CharField(max_length=120)
    # Public, unguessable code used in widget URLs; never the numeric id.
    code = models.CharField(max_length=32, unique=True, default=public_code, editable=False)
    is_active = models.BooleanField(default=True)
    operators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="open_channels"
    )
    consent_enabled = models.BooleanField(
        "Send warning about collecting personal data", default=False
    )
    agreement = models.ForeignKey(
        "consent.Agreement",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="open_channels",
        verbose_name="Consent",
    )
    crm_item_kind = models.CharField(
        "Save new clients to CRM as",
        max_length=10,
        choices=CrmItemKind.choices,
        default=CrmItemKind.LEAD,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def connector(self, kind: str) -> Connector | None:
        """Return this channel's connector of ``kind``, if configured."""
        for connector in self.connectors.all():
            if connector.kind == kind:
                return connector
        return None


class Connector(models.Model):
    """One connector (Live chat, Telegram, ...) configured on an Open Channel."""

    channel = models.ForeignKey(OpenChannel, on_delete=models.CASCADE, related_name="connectors")
    kind = models.CharField(max_length=20, choices=ConnectorKind.choices)
    is_enabled = models.BooleanField(default=True)
    # Non-secret settings (allowed origins for the widget, bot names, ...).
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "kind"], name="one_connector_kind_per_channel"
            )
        ]
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.channel}"
