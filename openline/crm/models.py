"""CRM items (leads and contacts), their identities, links, notes and change history.

A lead and a contact are one model with a ``kind``: converting a lead to a
contact changes the kind and keeps every link, identity, note and change.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from openline.openchannels.models import CrmItemKind


class CrmItem(models.Model):
    """A client known to the company: a lead or a contact."""

    kind = models.CharField(max_length=10, choices=CrmItemKind.choices, default=CrmItemKind.LEAD)
    name = models.CharField(max_length=200, blank=True)
    source_channel = models.ForeignKey(
        "openchannels.OpenChannel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="crm_items",
        verbose_name="Source channel",
    )
    responsible = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="responsible_crm_items",
        verbose_name="Responsible operator",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["kind", "-id"], name="crm_item_kind"),
            models.Index(fields=["source_channel", "-id"], name="crm_item_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}" + (f" · {self.name}" if self.name else "")

    @property
    def label(self) -> str:
        """Name the item without personal data, e.g. "Lead #12" (kept in the consent registry)."""
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def display_name(self) -> str:
        return self.name or self.label


class IdentityKind(models.TextChoices):
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    MESSENGER = "messenger", "Messenger"


class CrmIdentity(models.Model):
    """One email, phone or messenger identity of an item, normalised for matching."""

    item = models.ForeignKey(CrmItem, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=10, choices=IdentityKind.choices)
    # Normalised: lower-case email, phone digits only, "<origin>:<external id>".
    value = models.CharField(max_length=254)
    # As the client or operator wrote it (e.g. "+49 30 1234-567").
    display = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "id"]
        constraints = [
            # One item per email/phone/messenger identity: matching can never be ambiguous.
            models.UniqueConstraint(fields=["kind", "value"], name="crm_identity_once")
        ]

    def __str__(self) -> str:
        return self.display


class CrmVisitor(models.Model):
    """Links a visitor profile (a live chat or messenger client) to one item."""

    item = models.ForeignKey(CrmItem, on_delete=models.CASCADE, related_name="visitor_links")
    visitor = models.OneToOneField(
        "conversations.Visitor", on_delete=models.CASCADE, related_name="crm_link"
    )
    linked_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"visitor {self.visitor_id} → item {self.item_id}"


class CrmConversation(models.Model):
    """A conversation saved to an item; a conversation is saved to at most one item."""

    item = models.ForeignKey(CrmItem, on_delete=models.CASCADE, related_name="conversation_links")
    # The unique constraint is what makes concurrent "Save to CRM" create one item.
    conversation = models.OneToOneField(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="crm_link"
    )
    linked_at = models.DateTimeField(auto_now_add=True)
    linked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"chat #{self.conversation_id} → item {self.item_id}"


class CrmNote(models.Model):
    """A note an operator wrote on an item."""

    item = models.ForeignKey(CrmItem, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_label = models.CharField(max_length=150)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"note by {self.author_label}"


class ChangeAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    CONVERTED = "converted", "Converted to contact"
    CONVERSATION_SAVED = "conversation_saved", "Conversation saved"
    NOTE_ADDED = "note_added", "Note added"


class CrmChange(models.Model):
    """One change to an item: who, when, what. Appended, never edited.

    The history goes with the item when a client's data is deleted (it holds
    personal data); the deletion itself is logged in ``CrmErasure``.
    """

    item = models.ForeignKey(CrmItem, on_delete=models.CASCADE, related_name="changes")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Denormalised so the history reads well after the staff account is removed.
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=20, choices=ChangeAction.choices)
    # {"field": [before, after], ...} or {"note": "...", "conversation": 12}
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor_label}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("A CRM change is never edited; append a new one.")
        super().save(*args, **kwargs)


class CrmErasure(models.Model):
    """A deleted client: what was removed, by whom. Holds no personal data."""

    item_id_deleted = models.PositiveBigIntegerField(unique=True)
    item_label = models.CharField(max_length=100)
    visitor_public_ids = models.JSONField(default=list)
    counts = models.JSONField(default=dict)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.item_label} deleted"
