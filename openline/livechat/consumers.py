"""The visitor's websocket: authenticated by a signed token, sees only its own conversations."""

from __future__ import annotations

import asyncio
import uuid

from channels.consumer import get_handler_name
from django.conf import settings

from openline.conversations import actions, events
from openline.conversations.actions.common import check_text
from openline.conversations.models import (
    Conversation,
    ConversationStatus,
    SenderKind,
    Visitor,
)
from openline.conversations.protocol import (
    CLOSE_AUTH_TIMEOUT,
    CLOSE_UNAUTHENTICATED,
    JsonFrameConsumer,
    db_async,
    int_field,
)
from openline.core import pgasync
from openline.core.ip import scope_client_ip, scope_forwarded_scheme
from openline.livechat import flows, limits, message_pg, presence, resume, resume_pg, tokens
from openline.openchannels.models import ConnectorKind, OpenChannel
from openline.openchannels.policy import consent_offer, offer_payload

AUTH_TIMEOUT = 10
HISTORY_LIMIT = 200


def livechat_channel(code: str) -> OpenChannel | None:
    """Return the active channel with an enabled live chat connector, or None."""
    channel = (
        OpenChannel.objects.select_related("agreement").filter(code=code, is_active=True).first()
    )
    if channel is None:
        return None
    connector = channel.connector(ConnectorKind.LIVECHAT)
    return channel if connector is not None and connector.is_enabled else None


def conversation_state(conversation) -> dict | None:
    if conversation is None:
        return None
    return {
        "id": conversation.id,
        "status": conversation.status,
        "closed_reason": conversation.closed_reason,
    }


def visitor_ready(*, channel, visitor, last_id: int, language: str, base_url: str = "") -> dict:
    """Build the ``ready`` frame: a fresh token, the current conversation, missed messages, the gate."""
    # Always read again: a connected socket's visitor carries what was true when it connected.
    fresh = resume.reload_visitor(visitor)
    if fresh is None:
        raise actions.ActionError("not_found", "This chat is no longer available.")
    return resume.ready_frame(visitor=fresh, last_id=last_id, language=language, base_url=base_url)


class VisitorConsumer(JsonFrameConsumer):
    """One widget connection; the first frame must be ``auth`` with a valid token."""

    frame_types = frozenset({"message", "typing", "delivered", "read", "withdraw", "sync", "ping"})

    async def connect(self) -> None:
        self.code = self.scope["url_route"]["kwargs"]["code"]
        self.visitor: Visitor | None = None
        self.joined: str | None = None  # the visitor's group, joined with a valid token
        self.channel_obj: OpenChannel | None = None
        self.ip = scope_client_ip(self.scope)
        self.user_agent = _header(self.scope, b"user-agent")[:1000]
        self.base_url = _base_url(self.scope)
        self.language = "en"
        self.authenticating = False
        self.closing = False
        events.start_publisher()
        await self.accept()
        self.auth_timer = asyncio.get_running_loop().call_later(AUTH_TIMEOUT, self._auth_timeout)

    def _auth_timeout(self) -> None:
        if self.visitor is None and not self.authenticating:
            self.closing = True
            asyncio.ensure_future(self.close(code=CLOSE_AUTH_TIMEOUT))

    async def disconnect(self, code) -> None:
        # Refused before connect() ran (an outage answer): there is no timer to stop.
        timer = getattr(self, "auth_timer", None)
        if timer is not None:
            timer.cancel()
        joined = getattr(self, "joined", None)  # None when refused before connect() ran
        if joined is not None:
            await events.leave_group(self.channel_layer, joined, self.channel_name)

    async def visitor_sockets_close(self, message: dict) -> None:
        # The client's data was deleted: this socket ends as one with an invalid token does,
        # and the widget starts over as a new client.
        self.closing = True
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def dispatch(self, message) -> None:
        # Channels first runs close_old_connections() on Django's single sync thread for every
        # message (connect, each frame, each event): a thread hop that every reconnecting socket
        # of the process queued for. This consumer's database work runs through db_async, whose
        # threads keep their connections and drop broken ones, so that hop is skipped.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']!r}")
        await handler(message)

    async def pre_dispatch(self, kind: str, frame: dict) -> bool:
        if self.visitor is None:
            if kind == "auth":
                await self.authenticate(frame)
            else:
                # Nothing is told to a connection that has not shown a valid token.
                await self.close(code=CLOSE_UNAUTHENTICATED)
            return False
        if not limits.FRAMES_PER_CONNECTION.allow(self.channel_name):
            await self.send_error("rate_limited", "Too many frames; slow down.")
            return False
        # The shared (Redis) buckets, the visitor's then the IP's, are asked in one round
        # trip without blocking the event loop.
        if kind == "message" and not await limits.aallow_all(
            [
                (limits.MESSAGES_PER_VISITOR, self.visitor.public_id.hex),
                (limits.MESSAGES_PER_IP, self.ip or "unknown"),
            ]
        ):
            await self.send_error(
                "rate_limited",
                "You are sending messages too quickly. Wait a moment.",
                client_id=frame.get("client_id") if isinstance(frame.get("client_id"), str) else "",
            )
            return False
        return True

    async def authenticate(self, frame: dict) -> None:
        if self.authenticating or self.closing:
            return
        # The timer only limits how long a client may wait before sending its token.
        self.authenticating = True
        self.auth_timer.cancel()
        try:
            public_id = tokens.read_token(str(frame.get("token") or ""), channel_code=self.code)
            last_id = int_field(frame, "last_id", default=0)
        except (tokens.BadToken, ValueError):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        language = frame.get("language")
        if isinstance(language, str) and 0 < len(language) <= 10:
            self.language = language
        try:
            group = events.VISITOR_GROUP_PREFIX + uuid.UUID(public_id).hex
        except ValueError:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # The group is joined before the read: an event committed while the ready frame is read
        # waits in this socket's queue and follows the frame (the widget keeps each message
        # once, by id) instead of falling between the read and the join. The subscription is
        # written without waiting for Redis' answer: no round trip here.
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined = group
        ready = await self._load(public_id, last_id)
        self.authenticating = False
        if ready is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.auth_timer.cancel()
        await self.send_json(ready)
        presence.seen(self.visitor)

    async def _load(self, public_id: str, last_id: int) -> dict | None:
        if not pgasync.available():
            # One hop to the frame thread pool (not Django's single sync thread, where every
            # connecting socket of the process would queue) and, usually, one statement.
            return await db_async(self._load_sync, parallel=True)(public_id, last_id)
        # PostgreSQL: the one statement from the event loop, with the process's other
        # reconnecting widgets; a thread hop only when the frame needs more (missed messages,
        # a consent offer).
        try:
            visitor = await resume_pg.aload_visitor(code=self.code, public_id=public_id)
        except resume_pg.ReadAlone:
            return await db_async(self._load_sync, parallel=True)(public_id, last_id)
        if visitor is None:
            return None
        self.visitor, self.channel_obj = visitor, visitor.channel
        if resume.needs_queries(visitor, last_id):
            return await db_async(self._ready_sync, parallel=True)(last_id)
        return self._ready_sync(last_id)

    def _load_sync(self, public_id: str, last_id: int) -> dict | None:
        visitor = resume.load_visitor(code=self.code, public_id=public_id)
        if visitor is None:
            return None
        self.visitor, self.channel_obj = visitor, visitor.channel
        return self._ready_sync(last_id)

    def _ready_sync(self, last_id: int) -> dict:
        assert self.visitor is not None
        return resume.ready_frame(
            visitor=self.visitor, last_id=last_id, language=self.language, base_url=self.base_url
        )

    # ----- frames ------------------------------------------------------------------------

    async def frame_ping(self, frame: dict) -> None:
        await self.send_json({"type": "pong"})

    async def frame_sync(self, frame: dict) -> None:
        last_id = int_field(frame, "last_id", default=0)
        ready = await db_async(visitor_ready)(
            channel=self.channel_obj,
            visitor=self.visitor,
            last_id=last_id,
            language=self.language,
            base_url=self.base_url,
        )
        await self.send_json(ready)

    async def frame_message(self, frame: dict) -> None:
        text = frame.get("text")
        client_id = frame.get("client_id") or ""
        conversation_id = frame.get("conversation")
        if conversation_id is not None:
            conversation_id = int_field(frame, "conversation")
        raw_url = frame.get("page_url")
        page_url = raw_url if isinstance(raw_url, str) else ""
        # This socket is answered directly with what the action publishes (events.SENDER).
        answer = events.Answer(self.channel_name)
        fell_back = False
        if conversation_id and message_pg.usable():
            # PostgreSQL: one autocommit statement from this event loop stores, notes and
            # queues the webhooks; when it stores nothing the ORM path below tells why.
            checked_text, checked_id = check_text(text, client_id)
            stored = await message_pg.send(
                channel=self.channel_obj,
                visitor=self.visitor,
                conversation_id=conversation_id,
                text=checked_text,
                client_id=checked_id,
                answer=answer,
            )
            if stored is not None:
                await self._answer(answer, stored)
                return
            fell_back = True
        sender = events.SENDER.set(answer)
        try:
            message, created = await db_async(flows.visitor_send, parallel=True)(
                channel=self.channel_obj,
                visitor=self.visitor,
                conversation_id=conversation_id,
                text=text,
                client_id=client_id,
                page_url=page_url[:2000],
                resend=frame.get("resend") is True,
            )
        except actions.ActionError as exc:
            if exc.code == "consent_required":
                exc.extra.update(await db_async(self._offer)())
            raise
        finally:
            events.SENDER.reset(sender)
        await self._answer(answer, message)
        if fell_back:
            # An endpoint this process did not know may be why: learn them for the next one.
            await message_pg.learn_endpoints()

    async def _answer(self, answer: events.Answer, message) -> None:
        texts = answer.texts("visitor")
        if not texts:
            # A resent frame: confirm it to this connection only; others already have it.
            await self.send_json({"type": "message", "message": events.message_payload(message)})
        for event in texts:
            await self.send(text_data=event)

    def _offer(self) -> dict:
        return {
            "consent": offer_payload(
                consent_offer(self.channel_obj, self.language), base_url=self.base_url
            ),
            "consent_changed": flows.consent_status(self.channel_obj, self.visitor).changed,
        }

    async def frame_typing(self, frame: dict) -> None:
        conversation = await self._conversation(frame, open_only=True)
        if conversation is not None:
            await db_async(actions.signal_typing)(
                conversation=conversation, sender=SenderKind.VISITOR
            )

    async def frame_delivered(self, frame: dict) -> None:
        await self._mark(frame, actions.mark_delivered)

    async def frame_read(self, frame: dict) -> None:
        await self._mark(frame, actions.mark_read)

    async def _mark(self, frame: dict, action) -> None:
        up_to = int_field(frame, "up_to")
        conversation = await self._conversation(frame)
        if conversation is None:
            raise actions.ActionError("not_found", "This conversation does not exist.")
        await db_async(action, parallel=True)(
            conversation=conversation, reader=SenderKind.VISITOR, up_to=up_to
        )

    async def frame_withdraw(self, frame: dict) -> None:
        raw_url = frame.get("page_url")
        page_url = raw_url if isinstance(raw_url, str) else ""
        record = await db_async(flows.withdraw_livechat_consent)(
            channel=self.channel_obj,
            visitor=self.visitor,
            page_url=page_url[:2000],
            ip=self.ip,
            user_agent=self.user_agent,
        )
        await self.send_json({"type": "withdrawn", "record": str(record.uuid)})

    async def _conversation(self, frame: dict, open_only: bool = False):
        # Frame work runs in the frames' thread pool: queued behind no page or other socket.
        return await db_async(self._find_conversation, parallel=True)(frame, open_only)

    def _find_conversation(self, frame: dict, open_only: bool = False):
        conversation_id = int_field(frame, "conversation")
        conversations = Conversation.objects.filter(visitor=self.visitor, channel=self.channel_obj)
        if open_only:
            conversations = conversations.exclude(status=ConversationStatus.CLOSED)
        return conversations.select_related("visitor").filter(pk=conversation_id).first()


def _base_url(scope) -> str:
    """Return Openline's public origin for links in frames (OPENLINE_PUBLIC_URL, else the Host)."""
    if settings.OPENLINE_PUBLIC_URL:
        return settings.OPENLINE_PUBLIC_URL
    host = _header(scope, b"host")
    if not host or any(c in host for c in "/\\@ "):
        return ""  # the widget resolves a bare path on its own origin
    # Behind a TLS-terminating proxy the socket is plain ws: believe a trusted proxy's scheme.
    scheme = scope_forwarded_scheme(scope) or ("https" if scope.get("scheme") == "wss" else "http")
    return f"{scheme}://{host}"


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""
