"""Signals the consent registry listens to, so the audit trail has one source."""

from django.dispatch import Signal

# Sent inside the transaction with channel, actor, before (dict or None), after (dict).
consent_settings_changed = Signal()
