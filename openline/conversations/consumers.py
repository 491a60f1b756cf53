"""The operator's websocket: authenticated by the console session, one per console tab."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.sessions.backends.base import UpdateError

from openline.accounts import realtime
from openline.accounts.middleware import session_still_active
from openline.accounts.models import Role
from openline.conversations import actions, events, limits, notes
from openline.conversations.models import Conversation, SenderKind
from openline.conversations.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHENTICATED,
    JsonFrameConsumer,
    db_async,
    int_field,
)
from openline.openchannels.models import OpenChannel

INBOX_ROLES = (Role.ADMINISTRATOR, Role.OPERATOR)
# Frames an operator sends by their own hand. The inbox sends "delivered", "read" and "sync"
# by itself as visitors write or the socket reconnects: counting those would keep an
# unattended console signed in for as long as clients keep writing.
ACTIVITY_FRAMES = frozenset({"reply", "note", "typing"})


def visible_conversations(user):
    """Return the conversations a staff user may see: all for administrators, their channels' for operators."""
    conversations = Conversation.objects.select_related("channel", "visitor", "assignee")
    if user.role == Role.ADMINISTRATOR:
        return conversations
    if user.role == Role.OPERATOR:
        return conversations.filter(channel__operators=user)
    return conversations.none()


class OperatorConsumer(JsonFrameConsumer):
    """Live inbox and chat events for an operator or administrator."""

    frame_types = frozenset({"reply", "note", "typing", "delivered", "read", "sync", "ping"})

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.groups_joined: list[str] = []
        self.closing = False
        events.start_publisher()
        await self.accept()
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None) or ""
        if not (
            self.user
            and self.user.is_authenticated
            and self.user.is_active
            and self.user.role in INBOX_ROLES
            and self.session_key
        ):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Access groups first: a logout or removal from now on reaches this socket.
        await self._join(self._access_groups())
        await self._join(await self._groups())
        # The session may have ended while this socket was joining its groups.
        if await self._refused() is not None:
            return
        await self.send_json({"type": "ready", "user": self.user.pk})

    def _access_groups(self) -> list[str]:
        groups = [realtime.user_group(self.user.pk), realtime.session_group(self.session_key)]
        if self.user.role == Role.ADMINISTRATOR:
            groups.append(realtime.ADMINISTRATORS_GROUP)
        return groups

    async def _join(self, groups: list[str]) -> None:
        for group in groups:
            if group not in self.groups_joined:
                await self.channel_layer.group_add(group, self.channel_name)
                self.groups_joined.append(group)

    async def _groups(self) -> list[str]:
        return self._channel_groups(await self._channel_ids())

    def _channel_groups(self, channel_ids: list[int]) -> list[str]:
        # Administrators follow every channel through their one group (an access group):
        # joining each channel's group would cost a subscription per channel per socket.
        if self.user.role == Role.ADMINISTRATOR:
            return []
        return [events.channel_group(pk) for pk in channel_ids]

    @db_async
    def _channel_ids(self) -> list[int]:
        if self.user.role == Role.ADMINISTRATOR:
            return list(OpenChannel.objects.values_list("pk", flat=True))
        return list(self.user.open_channels.values_list("pk", flat=True))

    async def disconnect(self, code) -> None:
        for group in getattr(self, "groups_joined", []):
            await events.leave_group(self.channel_layer, group, self.channel_name)
        self.groups_joined = []

    async def pre_dispatch(self, kind: str, frame: dict) -> bool:
        if self.closing:
            return False
        if not limits.FRAMES_PER_CONNECTION.allow(self.channel_name):
            await self.send_error("rate_limited", "Too many frames; slow down.")
            return False
        # Every frame, not a cached answer: a reply after logout must never be stored.
        return await self._refused(activity=kind in ACTIVITY_FRAMES) is None

    async def _refused(self, *, activity: bool = False) -> int | None:
        """Re-check the session and the user; close the socket and return the code if refused.

        ``activity``: the operator acted, so the session's last activity is refreshed.
        """
        # In the thread pool, like replies: one socket's check never queues behind another's.
        code, user = await db_async(self._check_session, parallel=True)(activity=activity)
        if code is None:
            role_changed = user.role != self.user.role
            self.user = user  # the fresh row: role and channels as they are now
            if role_changed:
                await self._close(CLOSE_UNAUTHENTICATED)
                return CLOSE_UNAUTHENTICATED
            return None
        await self._close(code)
        return code

    def _check_session(self, *, activity: bool):
        """Load the session and its user afresh (two indexed queries), as Django does per request.

        The session is gone after logout or expiry; ``auth.get_user`` refuses inactive users
        and a session whose password hash no longer matches (and deletes that session). A
        session idle past OPENLINE_SESSION_IDLE_TIMEOUT is refused like a signed-out one; it is
        left for the next page load to sign out, which tells the user why.
        """
        engine = import_module(settings.SESSION_ENGINE)
        session = engine.SessionStore(session_key=self.session_key)
        # get_user reads only ``request.session``: a stand-in request is enough.
        user = auth.get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
        if not user.is_authenticated:
            # A live session of a deactivated user: forbidden, not merely signed out.
            if session.get(auth.SESSION_KEY) == str(self.user.pk) and not self._active():
                return CLOSE_FORBIDDEN, None
            return CLOSE_UNAUTHENTICATED, None
        if user.pk != self.user.pk:
            return CLOSE_UNAUTHENTICATED, None
        if not user.is_active or user.role not in INBOX_ROLES:
            return CLOSE_FORBIDDEN, None
        if not session_still_active(session):
            return CLOSE_UNAUTHENTICATED, None
        if user.must_change_password:
            # Pages send this user to the password form; 4401 makes the inbox reload into it.
            return CLOSE_UNAUTHENTICATED, None
        if activity and session.modified:
            # The stamp was due (at most once a minute): save it like a request would.
            try:
                session.save()
            except UpdateError:  # signed out between the load and the save
                return CLOSE_UNAUTHENTICATED, None
        return None, user

    def _active(self) -> bool:
        return type(self.user).objects.filter(pk=self.user.pk, is_active=True).exists()

    async def _close(self, code: int) -> None:
        if self.closing:
            return
        self.closing = True
        for group in self.groups_joined:
            await events.leave_group(self.channel_layer, group, self.channel_name)
        self.groups_joined = []
        await self.close(code=code)

    async def staff_access(self, message: dict) -> None:
        """Handle an access change pushed by ``openline.accounts.realtime`` ("staff.access")."""
        if message.get("action") == "close":
            await self._close(int(message.get("code") or CLOSE_UNAUTHENTICATED))
        elif message.get("action") == "refresh" and not self.closing:
            await self._sync_groups()

    async def _sync_groups(self) -> None:
        if await self._refused() is not None:
            return
        channels = sorted(await self._channel_ids())
        wanted = set(self._channel_groups(channels)) | set(self._access_groups())
        for group in [g for g in self.groups_joined if g not in wanted]:
            await events.leave_group(self.channel_layer, group, self.channel_name)
            self.groups_joined.remove(group)
        await self._join(sorted(wanted))
        # Tells the inbox (and tests) that the change is in effect.
        await self.send_json({"type": "channels", "channels": channels})

    async def _conversation(self, frame: dict) -> Conversation:
        # Frame work runs in the frames' thread pool: queued behind no page or other socket.
        return await db_async(self._find_conversation, parallel=True)(frame)

    def _find_conversation(self, frame: dict) -> Conversation:
        conversation_id = int_field(frame, "conversation")
        conversation = visible_conversations(self.user).filter(pk=conversation_id).first()
        if conversation is None:
            raise actions.ActionError("not_found", "This conversation does not exist.")
        return conversation

    async def frame_ping(self, frame: dict) -> None:
        await self.send_json({"type": "pong"})

    async def _write(self, frame: dict, action: Callable, echo: Callable[[Any], dict]) -> None:
        """Run a writing action (reply, note) on the frame's conversation.

        The stored item is confirmed to this socket directly, with the event the other staff
        sockets get (or ``echo`` for a repeated ``client_id``, which creates nothing).
        """
        conversation = await self._conversation(frame)
        answer = events.Answer(self.channel_name)
        sender = events.SENDER.set(answer)
        try:
            item, created = await db_async(action, parallel=True)(
                conversation=conversation,
                actor=self.user,
                text=frame.get("text"),
                client_id=frame.get("client_id") or "",
            )
        finally:
            events.SENDER.reset(sender)
        texts = answer.texts("operators")
        if not texts:
            await self.send_json(echo(item))
        for text in texts:
            await self.send(text_data=text)

    async def frame_reply(self, frame: dict) -> None:
        await self._write(
            frame,
            actions.send_reply,
            lambda message: {"type": "message", "message": events.message_payload(message)},
        )

    async def frame_note(self, frame: dict) -> None:
        await self._write(
            frame,
            actions.add_note,
            lambda note: {"type": "note.added", "note": notes.note_payload(note)},
        )

    async def frame_typing(self, frame: dict) -> None:
        conversation = await self._conversation(frame)
        await db_async(actions.signal_typing, parallel=True)(
            conversation=conversation, sender=SenderKind.OPERATOR, name=str(self.user)
        )

    async def frame_delivered(self, frame: dict) -> None:
        conversation = await self._conversation(frame)
        await db_async(actions.mark_delivered, parallel=True)(
            conversation=conversation, reader=SenderKind.OPERATOR, up_to=int_field(frame, "up_to")
        )

    async def frame_read(self, frame: dict) -> None:
        conversation = await self._conversation(frame)
        await db_async(actions.mark_read, parallel=True)(
            conversation=conversation, reader=SenderKind.OPERATOR, up_to=int_field(frame, "up_to")
        )

    async def frame_sync(self, frame: dict) -> None:
        conversation = await self._conversation(frame)
        last_id = int_field(frame, "last_id", default=0)
        last_note_id = int_field(frame, "last_note_id", default=0)
        messages = await db_async(
            lambda: [
                events.message_payload(m)
                for m in conversation.messages.filter(id__gt=last_id)
                .select_related("author")
                .order_by("id")[:500]
            ]
        )()
        # Private notes only ever travel on this, the operators' socket.
        note_list = await db_async(
            lambda: [
                notes.note_payload(n)
                for n in notes.notes_between(conversation, after_id=last_note_id)
            ]
        )()
        await self.send_json(
            {
                "type": "history",
                "conversation": conversation.id,
                "messages": messages,
                "notes": note_list,
            }
        )
