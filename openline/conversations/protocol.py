"""The JSON-frame websocket protocol shared by the widget and the console.

Every frame is a JSON object with a ``type``. Bad frames (not JSON, unknown
type, too long, too frequent) get an ``error`` frame and the connection stays
open; only authentication failures close it.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import SyncToAsync
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import InterfaceError, OperationalError, connections

from openline.conversations.actions import MAX_TEXT, ActionError
from openline.conversations.events import BATCH_TYPE, EVENT_TYPE
from openline.core import jsonsafe, layer_watch, unavailable
from openline.core.params import MAX_ID

logger = logging.getLogger(__name__)

_EVENT_TYPES = frozenset({EVENT_TYPE, BATCH_TYPE})

MAX_FRAME = 4 * MAX_TEXT + 2048  # room for JSON escapes of a maximal text

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_AUTH_TIMEOUT = 4408
# "Try again later" (RFC 6455): the database or Redis is unavailable; clients reconnect.
CLOSE_TRY_AGAIN_LATER = 1013


class _KeepConnectionSyncToAsync(SyncToAsync):
    def thread_handler(self, loop, *args, **kwargs):
        try:
            return super().thread_handler(loop, *args, **kwargs)
        except (InterfaceError, OperationalError):
            # A broken connection is dropped here and reopened by the next frame.
            for connection in connections.all(initialized_only=True):
                connection.close()
            raise


# One process-wide pool for "parallel" frame work. Each of its threads keeps one database
# connection open between frames, so the number of threads bounds the connections websockets
# hold, however many event loops the process runs (the default executor is per loop, and a
# loop's threads die with their connections still checked out of the pool).
_FRAME_EXECUTOR = ThreadPoolExecutor(
    max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="openline-frames"
)


def db_async(func, *, parallel: bool = False):
    """Run ORM code for a websocket frame in Django's shared worker thread.

    Unlike ``database_sync_to_async`` this keeps the thread's database connection open
    between frames: reconnecting for every frame (CONN_MAX_AGE=0) costs about 5 ms on
    PostgreSQL, half the latency budget of a chat message. A connection that fails is
    closed and reopened on the next frame.

    ``parallel=True`` runs in the thread pool instead, each thread with its own connection,
    so one connection's database round trips do not queue behind another's. Frames of one
    connection are still handled one after the other (Channels awaits each handler), which
    keeps each client's messages in order; the conversation row lock orders the rest.
    """
    if parallel:
        return _KeepConnectionSyncToAsync(func, thread_sensitive=False, executor=_FRAME_EXECUTOR)
    return _KeepConnectionSyncToAsync(func, thread_sensitive=True)


def unavailable_frame(reason: str) -> dict:
    """The ``error`` frame a socket gets before it closes with 1013."""
    return {
        "type": "error",
        "code": "unavailable",
        "message": unavailable.MESSAGES[reason],
        "retry_after": unavailable.RETRY_AFTER[reason],
    }


async def _refuse_raw(receive, send, reason: str) -> None:
    """Accept, say why and close with 1013, without a consumer (no channel layer needed)."""
    message = await receive()
    if message.get("type") != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    frame = json.dumps(unavailable_frame(reason), separators=(",", ":"))
    await send({"type": "websocket.send", "text": frame})
    await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})


def _known_outage() -> str | None:
    if unavailable.breaker.is_open:
        return unavailable.DOWN
    watch = layer_watch.watch()
    if watch is not None and watch.down:
        return unavailable.REALTIME
    return None


class JsonFrameConsumer(AsyncWebsocketConsumer):
    """Parse frames, dispatch to ``frame_<type>`` handlers, turn refusals into error frames.

    A database or Redis outage (core/unavailable.py, core/layer_watch.py) is never a crash:
    the socket gets an ``error`` frame with code ``unavailable`` and closes with 1013; a
    socket opened during one is refused the same way at once.
    """

    frame_types: frozenset[str] = frozenset()
    _accepted = False
    _unavailable_sent = False

    async def __call__(self, scope, receive, send) -> None:
        if scope.get("type") == "websocket" and (reason := _known_outage()) is not None:
            await _refuse_raw(receive, send, reason)
            return
        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:
            reason = unavailable.note_failure(exc)
            if reason is None or self._accepted:
                raise
            # The layer could not even give this socket a channel (Redis down).
            await _refuse_raw(receive, send, reason)

    async def accept(self, subprotocol=None, headers=None) -> None:
        self._accepted = True
        await super().accept(subprotocol, headers)

    async def websocket_connect(self, message) -> None:
        if not layer_watch.register(self):
            await self.unavailable(unavailable.REALTIME)
            return
        try:
            await super().websocket_connect(message)
        except Exception as exc:
            reason = unavailable.note_failure(exc)
            if reason is None:
                raise
            await self.unavailable(reason)

    async def websocket_receive(self, message) -> None:
        if self._unavailable_sent:
            return
        try:
            await super().websocket_receive(message)
        except Exception as exc:
            reason = unavailable.note_failure(exc)
            if reason is None:
                raise
            await self.unavailable(reason)

    async def websocket_disconnect(self, message) -> None:
        layer_watch.unregister(self)
        await super().websocket_disconnect(message)

    async def layer_unavailable(self) -> None:
        """Called by the layer watch when Redis stops answering."""
        await self.unavailable(unavailable.REALTIME)

    async def unavailable(self, reason: str) -> None:
        """Tell the client the service is unavailable and close with 1013 (once)."""
        if self._unavailable_sent:
            return
        self._unavailable_sent = True
        self.closing = True  # the subclasses' flag: handle no more frames
        logger.info("websocket closed: %s unavailable", reason)
        if not self._accepted:
            await self.accept()
        await self.send_json(unavailable_frame(reason))
        await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def send_json(self, payload: dict) -> None:
        await self.send(text_data=json.dumps(payload, separators=(",", ":")))

    async def send_error(self, code: str, message: str, **extra) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, **extra})

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if text_data is None:
            await self.send_error("bad_frame", "Send text frames with JSON objects.")
            return
        if len(text_data) > MAX_FRAME:
            await self.send_error("too_long", f"A message can be at most {MAX_TEXT} characters.")
            return
        try:
            frame = jsonsafe.loads(text_data)
        except jsonsafe.UnsafeJson as exc:
            await self.send_error(exc.code, exc.message)
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.send_error("bad_frame", 'A frame must be a JSON object with a "type".')
            return
        kind = frame["type"]
        if not await self.pre_dispatch(kind, frame):
            return
        if kind not in self.frame_types:
            await self.send_error("unknown_type", f"Unknown frame type {kind[:40]!r}.")
            return
        try:
            await getattr(self, f"frame_{kind}")(frame)
        except ActionError as exc:
            await self.send_error(exc.code, exc.message, client_id=_client_id(frame), **exc.extra)
        except (TypeError, ValueError):
            await self.send_error(
                "bad_frame", f"The {kind[:40]} frame has missing or wrong fields."
            )
        except Exception as exc:
            if unavailable.note_failure(exc) is not None:
                raise  # websocket_receive answers and closes with 1013
            # Keep the connection usable; what was stored stays stored and resyncs on reconnect.
            logger.exception("websocket %s frame failed", kind[:40])
            await self.send_error(
                "internal", "Something went wrong; try again.", client_id=_client_id(frame)
            )

    async def pre_dispatch(self, kind: str, frame: dict) -> bool:
        """Check authentication and limits before a frame is handled; False stops it."""
        return True

    async def dispatch(self, message) -> None:
        # An event from the channel layer is JSON text sent on as it is, with no database
        # work: Channels' close_old_connections() before it (a hop to Django's single sync
        # thread, queued behind every page the process serves) is skipped.
        if message.get("type") in _EVENT_TYPES:
            await getattr(self, get_handler_name(message))(message)
            return
        await super().dispatch(message)

    async def openline_events(self, message: dict) -> None:
        # A batch of events queued while the publisher was busy ("openline.events").
        for text, origin in zip(message["texts"], message["origins"], strict=True):
            if origin != self.channel_name:
                await self.send(text_data=text)

    async def openline_event(self, message: dict) -> None:
        # Channels maps the group message type "openline.event" (EVENT_TYPE) to this method.
        # The event is JSON text already (serialised once by the publisher); the socket that
        # caused it was answered directly and skips its copy.
        if message["origin"] != self.channel_name:
            await self.send(text_data=message["text"])


def _client_id(frame: dict) -> str:
    value = frame.get("client_id")
    return value if isinstance(value, str) else ""


def int_field(frame: dict, name: str, *, default: int | None = None) -> int:
    """Read a non-negative integer field of a frame (at most a bigint, like every id)."""
    value = frame.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ValueError(name)
    return value
