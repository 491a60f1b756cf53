"""Open Channels and their connector configurations."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxLengthValidator, RegexValidator
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


class MessengerConsentMode(models.TextChoices):
    # The reference behaviour: a warning, and the client's next message confirms.
    WARNING = "warning", "Warning, then confirmation by continued conversation"
    # Beyond the reference: native "I accept" / "I decline" buttons.
    BUTTONS = "buttons", "Explicit consent with buttons"


DEFAULT_WITHDRAW_KEYWORDS = "/stop\nwithdraw consent"
DEFAULT_COLOR = "#2156d9"
DEFAULT_OFFLINE_MESSAGE = (
    "We are away right now. Leave a message and we will answer when we are back."
)
MAX_GREETING = 500
color_validator = RegexValidator(r"^#[0-9a-f]{6}$", "Enter a colour like #2156d9.")


class LauncherPosition(models.TextChoices):
    RIGHT = "right", "Bottom right"
    LEFT = "left", "Bottom left"


def no_hours() -> list:
    """Return the working-hours default: seven closed days, Monday first."""
    return [[] for _ in range(7)]


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
    messenger_consent_mode = models.CharField(
        "Consent in messengers",
        max_length=10,
        choices=MessengerConsentMode.choices,
        default=MessengerConsentMode.WARNING,
    )
    # Blank = the built-in wording, translated; "{link}" marks where the version's link goes.
    messenger_warning_text = models.TextField("Warning text in messengers", blank=True)
    # One per line, matched case-insensitively against a whole message.
    withdraw_keywords = models.TextField(
        "Withdrawal keywords", blank=True, default=DEFAULT_WITHDRAW_KEYWORDS
    )
    # Off (None) by default: delete clients who never confirmed after this many days.
    unconfirmed_retention_days = models.PositiveIntegerField(
        "Delete unconfirmed clients after (days)", null=True, blank=True
    )
    # How the live chat looks to clients; all plain text, the widget never renders HTML.
    display_name = models.CharField("Name shown to clients", max_length=120, blank=True)
    color = models.CharField(
        "Colour", max_length=7, default=DEFAULT_COLOR, validators=[color_validator]
    )
    greeting = models.TextField(
        "Greeting", blank=True, validators=[MaxLengthValidator(MAX_GREETING)]
    )
    launcher_position = models.CharField(
        "Chat button position",
        max_length=5,
        choices=LauncherPosition.choices,
        default=LauncherPosition.RIGHT,
    )
    # Working hours: off = always open. Seven lists (Monday first) of ["HH:MM", "HH:MM"]
    # ranges in ``hours_timezone``; "24:00" ends a day, so a night shift is two ranges.
    hours_enabled = models.BooleanField("Use working hours", default=False)
    hours_timezone = models.CharField("Time zone", max_length=64, default="UTC")
    working_hours = models.JSONField(default=no_hours, blank=True)
    offline_message = models.TextField(
        "Message outside working hours",
        blank=True,
        default=DEFAULT_OFFLINE_MESSAGE,
        validators=[MaxLengthValidator(MAX_GREETING)],
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def title(self) -> str:
        """Return the name clients see: the display name, else the channel's name."""
        return self.display_name or self.name

    @property
    def livechat_without_websites(self) -> bool:
        """Tell whether Live chat is on but no website may show it (uses prefetched connectors)."""
        connector = self.connector(ConnectorKind.LIVECHAT)
        if connector is None or not connector.is_enabled:
            return False
        # livechat.origins.CONFIG_KEY; read here because Open Channels sit below Live chat.
        return not connector.config.get("allowed_origins")

    def connector(self, kind: str) -> Connector | None:
        """Return this channel's connector of ``kind``, if configured."""
        for connector in self.connectors.all():
            if connector.kind == kind:
                return connector
        return None


class ConnectionState(models.TextChoices):
    NOT_CONNECTED = "not_connected", "Not connected"
    # Credentials saved, the platform has not confirmed them yet (e.g. Meta's handshake).
    PENDING = "pending", "Waiting for the platform"
    CONNECTED = "connected", "Connected"
    ERROR = "error", "Error"


class ConnectorMode(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    POLLING = "polling", "Long polling"


class Connector(models.Model):
    """One connector (Live chat, Telegram, ...) configured on an Open Channel."""

    channel = models.ForeignKey(OpenChannel, on_delete=models.CASCADE, related_name="connectors")
    kind = models.CharField(max_length=20, choices=ConnectorKind.choices)
    is_enabled = models.BooleanField(default=True)
    # Non-secret settings (allowed origins for the widget, bot names, ...).
    config = models.JSONField(default=dict, blank=True)
    # Messenger credentials as one Fernet token (core.secrets); never shown again in full.
    secrets = models.TextField(blank=True, default="")
    # Unguessable token in the connector's webhook URL.
    webhook_token = models.CharField(max_length=64, unique=True, null=True, blank=True)
    mode = models.CharField(
        max_length=10, choices=ConnectorMode.choices, default=ConnectorMode.WEBHOOK
    )
    state = models.CharField(
        max_length=16, choices=ConnectionState.choices, default=ConnectionState.NOT_CONNECTED
    )
    connected_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Telegram long polling: the next getUpdates offset and the one poller's lease.
    poll_offset = models.BigIntegerField(default=0)
    poller_owner = models.CharField(max_length=64, blank=True)
    poller_lease_until = models.DateTimeField(null=True, blank=True)
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
