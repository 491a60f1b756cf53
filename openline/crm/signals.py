"""Hooks the CRM offers the apps above it (e.g. outgoing webhooks); sent inside the transaction."""

from django.dispatch import Signal

# ``item``: a lead or contact was created.
item_created = Signal()
# ``item_id``, ``erasure``: a CRM item and its client's data were deleted.
item_deleted = Signal()
# The hourly retention job ran: apps above the CRM purge what they keep only for a while
# (e.g. the widget's start keys).
retention_run = Signal()
