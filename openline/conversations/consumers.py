"""The operator's websocket: authenticated by the console session, one per console tab."""

from __future__ import annotations

from openline.accounts.models import Role
from openline.conversations import actions, events
from openline.conversations.models import Conversation, SenderKind
from openline.conversations.protocol import CLOSE_FORBIDDEN, JsonFrameConsumer, db_async, int_field
from openline.livechat import limits
from openline.openchannels.models import OpenChannel


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

    frame_types = frozenset({"reply", "typing", "delivered", "read", "sync", "ping"})

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        events.start_publisher()
        await self.accept()
        if not (
            self.user
            and self.user.is_authenticated
            and self.user.is_active
            and self.user.role in (Role.ADMINISTRATOR, Role.OPERATOR)
        ):
            await self.close(code=CLOSE_FORBIDDEN)
            self.groups_joined: list[str] = []
            return
        self.groups_joined = await self._groups()
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.send_json({"type": "ready", "user": self.user.pk})

    @db_async
    def _groups(self) -> list[str]:
        if self.user.role == Role.ADMINISTRATOR:
            # Every channel's group, so one send per event reaches operators and administrators.
            channels = OpenChannel.objects.values_list("pk", flat=True)
        else:
            channels = self.user.open_channels.values_list("pk", flat=True)
        return [events.channel_group(pk) for pk in channels]

    async def disconnect(self, code) -> None:
        for group in getattr(self, "groups_joined", []):
            await events.leave_group(self.channel_layer, group, self.channel_name)

    async def pre_dispatch(self, kind: str, frame: dict) -> bool:
        if not limits.FRAMES_PER_CONNECTION.allow(self.channel_name):
            await self.send_error("rate_limited", "Too many frames; slow down.")
            return False
        return True

    @db_async
    def _conversation(self, frame: dict) -> Conversation:
        conversation_id = int_field(frame, "conversation")
        conversation = visible_conversations(self.user).filter(pk=conversation_id).first()
        if conversation is None:
            raise actions.ActionError("not_found", "This conversation does not exist.")
        return conversation

    async def frame_ping(self, frame: dict) -> None:
        await self.send_json({"type": "pong"})

    async def frame_reply(self, frame: dict) -> None:
        conversation = await self._conversation(frame)
        message, created = await db_async(actions.send_reply, parallel=True)(
            conversation=conversation,
            actor=self.user,
            text=frame.get("text"),
            client_id=frame.get("client_id") or "",
        )
        if not created:
            await self.send_json({"type": "message", "message": events.message_payload(message)})

    async def frame_typing(self, frame: dict) -> None:
        conversation = await self._conversation(frame)
        await db_async(actions.signal_typing)(
            conversation=conversation, sender=SenderKind.OPERATOR, name=str(self.user)
        )

    async def frame_delivered(self, frame: dict) -> None:
        conversation = await self._conversation(frame)
        await db_async(actions.mark_delivered)(
            conversation=conversation, reader=SenderKind.OPERATOR, up_to=int_field(frame, "up_to")
        )

    async def frame_read(self, frame: dict) -> None:
        conversation = await self._conversation(frame)
        await db_async(actions.mark_read)(
            conversation=conversation, reader=SenderKind.OPERATOR, up_to=int_field(frame, "up_to")
        )

    async def frame_sync(self, frame: dict) -> None:
        conversation = await self._conversation(frame)
        last_id = int_field(frame, "last_id", default=0)
        messages = await db_async(
            lambda: [
                events.message_payload(m)
                for m in conversation.messages.filter(id__gt=last_id)
                .select_related("author")
                .order_by("id")[:500]
            ]
        )()
        await self.send_json(
            {"type": "history", "conversation": conversation.id, "messages": messages}
        )
