"""Consents (agreements), their immutable versions, and the append-only registry."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from openline.core.ids import public_code


class Agreement(models.Model):
    """A consent text the company asks clients to accept; its wording lives in versions."""

    name = models.CharField(max_length=200, help_text="A name to find this consent later.")
    default_language = models.CharField(max_length=10, default="en")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def current_version(self) -> AgreementVersion | None:
        return self.versions.order_by("-number").first()


class AgreementVersion(models.Model):
    """One immutable wording of an agreement; never edited, only superseded."""

    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    allow_html = models.BooleanField("Allow HTML in agreement text", default=False)
    # Unguessable code of the public page that shows exactly this version.
    public_code = models.CharField(max_length=32, unique=True, default=public_code, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["agreement", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["agreement", "number"], name="one_number_per_agreement")
        ]

    def __str__(self) -> str:
        return f"{self.agreement.name} v{self.number}"


class AgreementText(models.Model):
    """The wording of a version in one language, with the exact HTML a client sees."""

    version = models.ForeignKey(AgreementVersion, on_delete=models.PROTECT, related_name="texts")
    language = models.CharField(max_length=10)
    text = models.TextField()
    rendered_html = models.TextField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["language"]
        constraints = [
            models.UniqueConstraint(fields=["version", "language"], name="one_text_per_language")
        ]

    def __str__(self) -> str:
        return f"{self.version} [{self.language}]"


class ConsentState(models.TextChoices):
    # W3C DPV consent-status words.
    GIVEN = "given", "Given"
    WITHDRAWN = "withdrawn", "Withdrawn"


class ConsentMethod(models.TextChoices):
    CLICKED_ACCEPT = "clicked_accept", "Clicked “I accept”"
    CONTINUED_CHATTING = "continued_chatting", "Continued chatting after the warning"
    SAVED_TO_CRM = "saved_to_crm", "Saved to CRM by an operator"
    API = "api", "Recorded through the API"
    WITHDRAWN_BY_CLIENT = "withdrawn_by_client", "Withdrawn by the client"


class ConsentOrigin(models.TextChoices):
    LIVECHAT = "livechat", "Live chat"
    TELEGRAM = "telegram", "Telegram"
    WHATSAPP = "whatsapp", "WhatsApp"
    FACEBOOK = "facebook", "Facebook Messenger"
    VIBER = "viber", "Viber"
    CRM = "crm", "CRM"
    API = "api", "API"


class SourceType(models.TextChoices):
    WEBSITE = "website", "Website"
    CONVERSATION = "conversation", "Conversation"
    CRM_ITEM = "crm_item", "CRM item"
    API = "api", "API client"


class ConsentRecord(models.Model):
    """Proof that a client gave or withdrew consent. Never updated, never deleted."""

    id = models.BigAutoField(primary_key=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(db_index=True)
    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="records")
    version = models.ForeignKey(AgreementVersion, on_delete=models.PROTECT, related_name="records")
    language = models.CharField(max_length=10)
    text_sha256 = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=ConsentState.choices)
    method = models.CharField(max_length=24, choices=ConsentMethod.choices)
    origin = models.CharField(max_length=12, choices=ConsentOrigin.choices)
    visitor = models.ForeignKey(
        "conversations.Visitor", on_delete=models.PROTECT, related_name="consent_records"
    )
    # Denormalised so history reads well after the visitor's personal data is erased.
    visitor_label = models.CharField(max_length=200)
    channel = models.ForeignKey(
        "openchannels.OpenChannel", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    conversation = models.ForeignKey(
        "conversations.Conversation", null=True, blank=True, on_delete=models.PROTECT,
        related_name="consent_records",
    )
    source_type = models.CharField(max_length=16, choices=SourceType.choices)
    source_id = models.CharField(max_length=64, blank=True)
    source_label = models.CharField(max_length=300, blank=True)
    address = models.TextField(blank=True, help_text="Page URL or link to the conversation.")
    ip = models.GenericIPAddressField(null=True, blank=True, unpack_ipv4=True)
    ip_missing_reason = models.CharField(max_length=200, blank=True)
    user_agent = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="consent_rec_newest"),
            models.Index(fields=["agreement", "-created_at", "-id"], name="consent_rec_agr_newest"),
            models.Index(fields=["visitor", "agreement", "-created_at"], name="consent_rec_visitor"),
        ]

    def __str__(self) -> str:
        return f"{self.uuid} {self.state}"
