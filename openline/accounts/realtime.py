"""Tell a staff user's open console websockets that their access changed.

The operator websocket authenticates once, when it opens; the consumer re-checks the
session on every frame, but a socket that only listens would go on receiving the inbox of
someone who logged out, was deactivated, changed password or left a channel. The actions
that change access therefore send a channel-layer message, after commit, to groups every
console socket joins:

- ``staff.user.<id>``: all sockets of a user (deactivation, password or role change,
  channel membership);
- ``staff.session.<hash>``: the sockets of one login session (logout ends only that one);
- ``staff.administrators``: administrators' sockets, which follow every Open Channel.

The consumer (``openline.conversations.consumers``) handles the ``staff.access`` type.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

ACCESS_TYPE = "staff.access"
ADMINISTRATORS_GROUP = "staff.administrators"

# Websocket close codes (the browser's inbox reloads on 4401 and gives up on 4403).
CLOSE_SIGNED_OUT = 4401
CLOSE_FORBIDDEN = 4403


def user_group(user_id: int) -> str:
    """Name the group of every console socket of one staff user."""
    return f"staff.user.{int(user_id)}"


def session_group(session_key: str) -> str:
    """Name the group of the console sockets of one login session (the key is not exposed)."""
    digest = hashlib.sha256(session_key.encode()).hexdigest()[:40]
    return f"staff.session.{digest}"


def disconnect_user_sockets(user_id: int, *, reason: str, code: int = CLOSE_SIGNED_OUT) -> None:
    """Close every open console websocket of the user, once the current transaction commits."""
    _after_commit([user_group(user_id)], {"action": "close", "code": code, "reason": reason})


def disconnect_session_sockets(session_key: str, *, reason: str) -> None:
    """Close the console websockets opened with one session (e.g. the one that logged out)."""
    _after_commit(
        [session_group(session_key)],
        {"action": "close", "code": CLOSE_SIGNED_OUT, "reason": reason},
    )


def refresh_user_channels(user_ids: Iterable[int]) -> None:
    """Make the users' open sockets re-read their Open Channels and join or leave groups."""
    groups = sorted({user_group(pk) for pk in user_ids})
    _after_commit(groups, {"action": "refresh"})


def refresh_administrators() -> None:
    """Make administrators' open sockets join a new Open Channel's group."""
    _after_commit([ADMINISTRATORS_GROUP], {"action": "refresh"})


def _after_commit(groups: list[str], message: dict) -> None:
    if groups:
        transaction.on_commit(lambda: _send(groups, message))


def _send(groups: list[str], message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(_send_all)(layer, groups, {"type": ACCESS_TYPE, **message})
    except Exception as exc:  # noqa: BLE001 - the change is committed; frames are re-checked anyway
        logger.warning("access change not pushed to sockets: %s", type(exc).__name__)


async def _send_all(layer, groups: list[str], message: dict) -> None:
    for group in groups:
        await layer.group_send(group, message)
