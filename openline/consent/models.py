"""Consents (agreements), their immutable versions, and the append-only registry."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from openline.core.ids import public_code


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove a row of an append-only table."""


class AppendOnlyQuerySet(models.QuerySet):
    """A queryset that cannot update or delete rows in bulk."""

    def update(self, **kwargs):
        raise AppendOnlyError(
            f"{self.model.__name__} rows are append-only: they cannot be updated."
        )

    def delete(self):
        raise AppendOnlyError(
            f"{self.model.__name__} rows are append-only: they cannot be deleted."
        )

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError(
            f"{self.model.__name__} rows are append-only: they cannot be updated."
        )

    def update_or_create(self, defaults=None, create_defaults=None, **kwargs):
        raise AppendOnlyError(
            f"{self.model.__name__} rows are append-only: they cannot be updated."
        )


AppendOnlyManager = models.Manager.from_queryset(AppendOnlyQuerySet)


class AppendOnlyModel(models.Model):
    """A row that can be inserted once and never saved again or deleted (database triggers agree)."""

    objects = AppendOnlyManager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(
                f"{type(self).__name__} rows are append-only: they cannot be updated."
            )
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(
            f"{type(self).__name__} rows are append-only: they cannot be deleted."
        )


class ImmutableModel(models.Model):
    """A row written once (a consent version or its text); later saves and deletes are refused.

    Records point at these rows as the wording their client saw, so the database
    triggers refuse UPDATE and DELETE here too (see ``triggers.IMMUTABLE_TABLES``).
    """

    objects = AppendOnlyManager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(
                f"{type(self).__name__} is immutable: create a new version instead."
            )
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(
            f"{type(self).__name__} is immutable: records may point at it, so it is never deleted."
        )


class AgreementQuerySet(models.QuerySet):
    """Agreements are renamed and deactivated, never deleted in bulk."""

    def delete(self):
        raise AppendOnlyError("Consents are never deleted: deactivate them instead.")


class Agreement(models.Model):
    """A consent text the company asks clients to accept; its wording lives in versions.

    Renamed and deactivated (both audited), never deleted: records and versions point at it.
    """

    name = models.CharField(max_length=200, help_text="A name to find this consent later.")
    default_language = models.CharField(max_length=10, default="en")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = models.Manager.from_queryset(AgreementQuerySet)()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Consents are never deleted: deactivate them instead.")

    @property
    def current_version(self) -> AgreementVersion | None:
        return self.versions.order_by("-number").first()


class AgreementVersion(ImmutableModel):
    """One immutable wording of an agreement; never edited, only superseded."""

    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    allow_html = models.BooleanField("Allow HTML in agreement text", default=False)
    # Unguessable code of the public page that shows exactly this version.
    public_code = models.CharField(max_length=32, unique=True, default=public_code, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # A plain id like AuditEvent.actor: SET_NULL would UPDATE an immutable row when a user
    # is deleted, and the database refuses that.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )

    class Meta:
        ordering = ["agreement", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["agreement", "number"], name="one_number_per_agreement")
        ]

    def __str__(self) -> str:
        return f"{self.agreement.name} v{self.number}"


class AgreementText(ImmutableModel):
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
    WITHDRAWN_ON_REQUEST = (
        "withdrawn_on_request",
        "Withdrawn by an operator on the client's request",
    )


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


class ConsentRecord(AppendOnlyModel):
    """Proof that a client gave or withdrew consent. Never updated, never deleted."""

    id = models.BigAutoField(primary_key=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Single-column indexes on created_at and the foreign keys would only duplicate the
    # composite indexes below (which lead with them) and slow every insert.
    created_at = models.DateTimeField()
    agreement = models.ForeignKey(
        Agreement, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    version = models.ForeignKey(
        AgreementVersion, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    language = models.CharField(max_length=10)
    text_sha256 = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=ConsentState.choices)
    method = models.CharField(max_length=24, choices=ConsentMethod.choices)
    origin = models.CharField(max_length=12, choices=ConsentOrigin.choices)
    visitor = models.ForeignKey(
        "conversations.Visitor",
        on_delete=models.PROTECT,
        related_name="consent_records",
        db_index=False,
    )
    # A pseudonymous label ("Visitor 1a2b3c4d"), never the client's name: records are
    # immutable and must survive erasure, so the name is looked up at read time instead.
    visitor_label = models.CharField(max_length=200)
    channel = models.ForeignKey(
        "openchannels.OpenChannel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    conversation = models.ForeignKey(
        "conversations.Conversation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
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
            models.Index(
                fields=["visitor", "agreement", "-created_at"], name="consent_rec_visitor"
            ),
            models.Index(fields=["channel", "-created_at", "-id"], name="consent_rec_chan_newest"),
            models.Index(fields=["ip", "-created_at"], name="consent_rec_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.uuid} {self.state}"

    @property
    def user_display(self) -> str:
        """Name the client as the console shows them today ("Deleted client …" once erased)."""
        return str(self.visitor)


class SealBatch(AppendOnlyModel):
    """A Merkle batch sealing consecutive consent records, chained to the batch before it.

    Records cannot carry their own seal (they are immutable), so seals live here. A
    batch covers every record id in ``(previous batch's last_record_id, last_record_id]``;
    ``id_ranges`` lists the ids that existed (gaps are rolled-back inserts), ``leaf_digests``
    keeps the first 8 bytes of each leaf hash so verification can name the record that
    changed, and ``batch_hash`` chains the header to ``prev_hash``.
    """

    number = models.PositiveBigIntegerField(unique=True)
    sealed_at = models.DateTimeField()
    first_record_id = models.BigIntegerField()
    last_record_id = models.BigIntegerField(unique=True)
    record_count = models.PositiveIntegerField()
    id_ranges = models.JSONField()
    leaf_digests = models.BinaryField()
    merkle_root = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    batch_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"Seal #{self.number} ({self.record_count} records)"


class AuditAction(models.TextChoices):
    CHANNEL_CONSENT_SETTINGS = "channel_consent_settings", "Open Channel consent settings changed"
    AGREEMENT_CREATED = "agreement_created", "Consent created"
    AGREEMENT_VERSION = "agreement_version", "New consent version"
    AGREEMENT_RENAMED = "agreement_renamed", "Consent renamed"
    AGREEMENT_DEACTIVATED = "agreement_deactivated", "Consent deactivated"
    AGREEMENT_REACTIVATED = "agreement_reactivated", "Consent reactivated"


class AuditEvent(AppendOnlyModel):
    """Who changed the consent workflow, when, from what to what. Never updated or deleted."""

    created_at = models.DateTimeField(db_index=True)
    # Plain ids and labels rather than enforced foreign keys: deleting a user or channel
    # must never touch (or be blocked by) the audit history.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    channel = models.ForeignKey(
        "openchannels.OpenChannel",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    agreement = models.ForeignKey(
        Agreement,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    subject_label = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["agreement", "-created_at"], name="consent_audit_agreement"),
            models.Index(fields=["channel", "-created_at"], name="consent_audit_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} at {self.created_at:%Y-%m-%d %H:%M}"


class Checkpoint(AppendOnlyModel):
    """A signed registry head (like a Certificate Transparency signed tree head).

    After each seal batch the head of the chain (batch number and hash, Merkle root,
    cumulative record count, last record id, time) is signed with the registry's Ed25519
    key, which lives outside the database. Anyone holding a checkpoint can later prove
    that the registry still contains everything it covered (``consent_verify --checkpoint``).
    """

    batch_number = models.PositiveBigIntegerField(unique=True)
    batch_hash = models.CharField(max_length=64)
    merkle_root = models.CharField(max_length=64)
    # Records sealed in batches 1..batch_number (quarantined ones included: they are listed).
    record_count = models.PositiveBigIntegerField()
    last_record_id = models.BigIntegerField()
    issued_at = models.DateTimeField()
    kid = models.CharField(max_length=64)
    jws = models.TextField()

    class Meta:
        ordering = ["-batch_number"]

    def __str__(self) -> str:
        return f"Checkpoint #{self.batch_number}"

    def as_public_dict(self) -> dict:
        """Return the checkpoint as published at /registry/checkpoint (the JWS is the proof)."""
        from datetime import UTC  # local: the top of this module is shared with other work

        return {
            "jws": self.jws,
            "batch_number": self.batch_number,
            "batch_hash": self.batch_hash,
            "merkle_root": self.merkle_root,
            "record_count": self.record_count,
            "last_record_id": self.last_record_id,
            "issued_at": self.issued_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "kid": self.kid,
        }


class VerificationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Problems found"
    ERROR = "error", "Could not finish"


class VerificationSource(models.TextChoices):
    CONSOLE = "console", "Console"
    COMMAND = "command", "consent_verify"
    SEALER = "sealer", "Sealer"


class VerificationRun(models.Model):
    """One verification of the registry, or a problem the sealer met (operational state)."""

    created_at = models.DateTimeField(db_index=True)
    source = models.CharField(
        max_length=8, choices=VerificationSource.choices, default=VerificationSource.CONSOLE
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    requested_by_label = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=8, choices=VerificationStatus.choices, default=VerificationStatus.QUEUED
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The worker's last sign of life while it runs (set at the start and with each progress
    # report): a run whose worker was killed stops beating and is started again.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Progress while running, and the totals when finished.
    batches_checked = models.PositiveBigIntegerField(default=0)
    records_checked = models.PositiveBigIntegerField(default=0)
    records_total = models.PositiveBigIntegerField(default=0)
    unsealed = models.PositiveBigIntegerField(default=0)
    problem_count = models.PositiveIntegerField(default=0)
    # [{"kind": ..., "record_id": ..., "message": ...}] (the first problems, capped).
    problems = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Verification {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (
            VerificationStatus.PASSED,
            VerificationStatus.FAILED,
            VerificationStatus.ERROR,
        )
