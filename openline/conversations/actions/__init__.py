"""The only write path for visitors, conversations and messages, whatever the channel.

Views, consumers, tasks and the API call these functions; each publishes its realtime events
to the channel layer after the transaction commits. The faces (live chat, messengers) build
their flows on top of these in their own packages.
"""

from openline.conversations.actions.common import MAX_CLIENT_ID, MAX_TEXT, ActionError
from openline.conversations.actions.lifecycle import (
    close_conversation,
    create_visitor,
    start_conversation,
    touch_visitor,
    touch_visitors,
    transfer_conversation,
    transfer_targets,
)
from openline.conversations.actions.messages import (
    can_answer,
    mark_delivered,
    mark_read,
    receive_message,
    send_reply,
    signal_typing,
)
from openline.conversations.actions.notes import add_note

__all__ = [
    "MAX_CLIENT_ID",
    "MAX_TEXT",
    "ActionError",
    "add_note",
    "can_answer",
    "close_conversation",
    "create_visitor",
    "mark_delivered",
    "mark_read",
    "receive_message",
    "send_reply",
    "signal_typing",
    "start_conversation",
    "touch_visitor",
    "touch_visitors",
    "transfer_conversation",
    "transfer_targets",
]
