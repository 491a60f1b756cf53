"""Hooks the conversations app offers the apps above it (e.g. outgoing webhooks).

Each is sent inside the writing transaction, so a receiver's writes commit or roll back with
the change; receivers must not call the network.
"""

from django.dispatch import Signal

# ``conversation``: a conversation was started.
conversation_started = Signal()
# ``conversation``: a conversation was closed.
conversation_closed = Signal()
# ``message``, ``conversation``: a message (client's, operator's or system's) was stored.
message_stored = Signal()
