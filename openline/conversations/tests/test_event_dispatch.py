"""Events from the channel layer reach a socket without a hop to Django's sync thread."""

from __future__ import annotations

import asyncio

import channels.consumer

from openline.conversations.protocol import JsonFrameConsumer


class Recording(JsonFrameConsumer):
    def __init__(self) -> None:
        super().__init__()
        self.channel_name = "me"
        self.sent: list[str] = []

    async def send(self, text_data=None, bytes_data=None, close=False) -> None:
        self.sent.append(text_data)

    async def websocket_ping(self, message) -> None:
        self.sent.append("handled")


def test_events_skip_close_old_connections_and_other_messages_keep_it(monkeypatch):
    hops: list[str] = []

    async def close_old_connections() -> None:
        hops.append("hop")

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", close_old_connections)
    consumer = Recording()

    async def run() -> None:
        await consumer.dispatch({"type": "openline.event", "text": "one", "origin": ""})
        await consumer.dispatch(
            {"type": "openline.events", "texts": ["two", "mine"], "origins": ["", "me"]}
        )
        assert hops == []
        await consumer.dispatch({"type": "websocket.ping"})

    asyncio.run(run())
    assert consumer.sent == ["one", "two", "handled"]
    assert hops == ["hop"]
