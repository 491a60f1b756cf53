"""Hooks the registry offers the apps above it, so it never has to import them."""

from django.dispatch import Signal

# Sent inside the deactivation's transaction (the consent row locked) with ``agreement`` and
# ``actor``; a receiver that still needs the consent (an Open Channel sending it) raises
# ValidationError to refuse, and nothing changes.
agreement_deactivating = Signal()
