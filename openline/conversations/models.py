"""Visitors (clients without access), conversations and their messages."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class VisitorOrigin(models.TextChoices):
    LIVECHAT = "livechat", "Live chat"
    TELEGRAM = "telegram", "Telegram"
    WHATSAPP = "whatsapp", "WhatsApp"
    FACEBOOK = "facebook", "Facebook Messenger"
    VIBER = "viber", "Viber"


class Visitor(models.Model):
    """A client's profile without access to Openline; never a staff account."""

    # Pseudonymous id shown in receipts and after the client's data is deleted.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    origin = models.CharField(max_length=12, choices=VisitorOrigin.choices)
    channel = models.ForeignKey(
        "openchannels.OpenChannel", on_delete=models.PROTECT, related_name="visitors"
    )
    external_id = models.CharField(max_length=128, blank=True, help_text="Messenger user id")
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    language = models.CharField(max_length=10, blank=True)
    user_agent = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["channel", "origin", "external_id"], name="visitor_external")
        ]

    def __str__(self) -> str:
        if self.erased_at:
            return f"Deleted client {str(self.public_id)[:8]}"
        return self.name or f"Visitor {str(self.public_id)[:8]}"


class SenderKind(models.TextChoices):
    VISITOR = "visitor", "Visitor"
    OPERATOR = "operator", "Operator"
    SYSTEM = "system", "System"


class ConversationStatus(models.TextChoices):
    NEW = "new", "New"
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Conversation(models.Model):
    """One chat between a visitor and the operators of an Open Channel."""

    channel = models.ForeignKey(
        "openchannels.OpenChannel", on_delete=models.PROTECT, related_name="conversations"
    )
    visitor = models.ForeignKey(Visitor, on_delete=models.PROTECT, related_name="conversations")
    origin = models.CharField(max_length=12, choices=VisitorOrigin.choices)
    status = models.CharField(
        max_length=10, choices=ConversationStatus.choices, default=ConversationStatus.NEW
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_conversations",
    )
    page_url = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    last_message_at = models.DateTimeField(null=True, blank=True, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(max_length=200, blank=True)
    # Denormalised from the newest message so the inbox lists without a subquery per row.
    last_message_sender = models.CharField(max_length=10, choices=SenderKind.choices, blank=True)
    last_message_preview = models.CharField(max_length=200, blank=True)
    # Client messages the operators have not read yet; kept by the actions under the row lock.
    unread_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        indexes = [
            models.Index(fields=["channel", "status", "-last_message_at"], name="conv_inbox")
        ]

    def __str__(self) -> str:
        return f"Chat #{self.pk}"


class Message(models.Model):
    """One message in a conversation; text is stored as written and escaped on display."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    sender = models.CharField(max_length=10, choices=SenderKind.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField()
    # Client-chosen id so a resent frame after a reconnect is not stored twice.
    client_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=~models.Q(client_id=""),
                name="message_client_id_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.sender} message #{self.pk}"
