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
    # Consent by continued conversation (messengers): the version whose warning was sent and
    # when; cleared once the client confirms. Listed on the Awaiting consent page meanwhile.
    warning_version_id = models.BigIntegerField(null=True, blank=True)
    awaiting_consent_since = models.DateTimeField(null=True, blank=True, db_index=True)
    # Why nothing is sent to this messenger client (they blocked the bot, unsubscribed); set
    # by the platform's event, cleared when they write again. Blank = reachable.
    unreachable = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["channel", "origin", "external_id"], name="visitor_external")
        ]
        constraints = [
            # One profile per messenger user per channel, whichever process sees them first.
            models.UniqueConstraint(
                fields=["channel", "origin", "external_id"],
                condition=~models.Q(external_id=""),
                name="visitor_external_once",
            )
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


class DeliveryState(models.TextChoices):
    """Where an outgoing messenger message stands; states only move forward (see RANK)."""

    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    READ = "read", "Read"
    FAILED = "failed", "Not delivered"


# A late "delivered" never overwrites "read"; "failed" is final only before "delivered".
DELIVERY_RANK = {"": 0, "queued": 1, "sent": 2, "failed": 3, "delivered": 4, "read": 5}


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
    # Messengers: the platform's id of this message (inbound: its idempotency key; outbound:
    # the id the send API returned), and where an outgoing message stands on the platform.
    external_id = models.CharField(max_length=128, blank=True)
    delivery_state = models.CharField(
        max_length=10, choices=DeliveryState.choices, blank=True, default=""
    )
    delivery_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=~models.Q(client_id=""),
                name="message_client_id_once",
            ),
            models.UniqueConstraint(
                fields=["conversation", "external_id"],
                condition=~models.Q(external_id=""),
                name="message_external_id_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sender} message #{self.pk}"


class OutboxState(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    # The worker stopped between claiming and recording the answer: it is never resent
    # automatically (a reply is sent at most once); the operator sees it and may resend.
    UNCERTAIN = "uncertain", "Delivery uncertain"


class OutboxItem(models.Model):
    """One outgoing messenger send (a reply, a consent warning, a notice): the outbound port.

    Written in the same transaction as the message it carries; a background task sends it
    through the channel's connector after commit, with retries and back-off.
    """

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="outbox"
    )
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="outbox")
    # The connector kind ("telegram", ...) and the recipient's platform id at enqueue time.
    kind = models.CharField(max_length=12)
    recipient = models.CharField(max_length=128)
    # {"text": str, "buttons": [{"id": str, "title": str}, ...]}
    payload = models.JSONField(default=dict)
    state = models.CharField(
        max_length=10, choices=OutboxState.choices, default=OutboxState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    platform_message_id = models.CharField(max_length=128, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    permanent = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.kind} send #{self.pk} ({self.state})"


class ConversationNote(models.Model):
    """A private note operators leave in a conversation; never sent to the client."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField()
    # Client-chosen id so a note resent after a reconnect is not stored twice.
    client_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "author", "client_id"],
                condition=~models.Q(client_id=""),
                name="note_client_id_once",
            )
        ]

    def __str__(self) -> str:
        return f"Note #{self.pk} on chat #{self.conversation_id}"


class CannedReply(models.Model):
    """A ready-made reply: shared (no owner, managed by administrators) or one operator's own."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="canned_replies",
    )
    title = models.CharField(max_length=120)
    shortcut = models.SlugField(max_length=40, help_text="Typed after / in the reply box")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["shortcut", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "shortcut"],
                condition=models.Q(owner__isnull=False),
                name="canned_shortcut_once_per_owner",
            ),
            models.UniqueConstraint(
                fields=["shortcut"],
                condition=models.Q(owner__isnull=True),
                name="canned_shortcut_once_shared",
            ),
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut}"

    @property
    def shared(self) -> bool:
        return self.owner_id is None
