"""Hooks the registry offers the apps above it, so it never has to import them."""

from django.dispatch import Signal

# Sent inside the deactivation's transaction (the consent row locked) with ``agreement`` and
# ``actor``; a receiver that still needs the consent (an Open Channel sending it) raises
# ValidationError to refuse, and nothing changes.
agreement_deactivating = Signal()

# Sent inside the writing transaction, after a ConsentRecord is saved, with ``record``
# (outgoing webhooks write their outbox rows here: a rolled-back record sends nothing).
record_written = Signal()
# Sent after a registry Checkpoint is saved (inside the sealer's transaction), with ``checkpoint``.
checkpoint_issued = Signal()
