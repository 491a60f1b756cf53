"""One write per HTTP answer: uvicorn's response head waits for the first piece of its body.

uvicorn (httptools) writes an answer's head when the application sends
``http.response.start`` and its body when it sends ``http.response.body``: two ``send()``
system calls and two TCP segments for every answer, each waking the client. On these small
answers (a chat start's 201, ``/healthz``) the second call is a measurable share of a worker's
time. ``install()`` gives each request cycle a view of its connection that keeps the head
until the body's first write and sends both in one call; an answer without body bytes (HEAD,
204), a closing connection and every other path send the head as they did, at the latest when
the body message is handled. Bytes leave in the order they were written.

``manage.py serve`` installs it in the server and each worker (``core/uvicorn_run.py``); a
plain ``uvicorn openline.asgi:application`` runs without it, answering the same bytes.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http import httptools_impl

_Cycle: Any = httptools_impl.RequestResponseCycle


class HeldHead:
    """A request cycle's connection whose writes wait while ``holding`` (the head) and then
    leave together with the next write, or at ``flush()`` / ``close()``."""

    __slots__ = ("transport", "held", "holding")

    def __init__(self, transport) -> None:
        self.transport = transport
        self.held: bytes | None = None
        self.holding = False

    def write(self, data: bytes) -> None:
        if self.holding:
            self.held = data if self.held is None else self.held + data
            return
        if self.held is not None:
            data, self.held = self.held + data, None
        self.transport.write(data)

    def flush(self) -> None:
        if self.held is not None:
            data, self.held = self.held, None
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str):
        return getattr(self.transport, name)


class CoalescingCycle(_Cycle):
    """uvicorn's request cycle, writing an answer's head with the first piece of its body."""

    def __init__(self, scope, transport, *args, **kwargs) -> None:
        super().__init__(scope, HeldHead(transport), *args, **kwargs)

    async def send(self, message) -> None:
        connection = self.transport
        if message["type"] == "http.response.start":
            connection.holding = True
            try:
                await super().send(message)
            finally:
                connection.holding = False
            return
        try:
            await super().send(message)
        finally:
            connection.flush()  # nothing held any more once a body message was handled


def install() -> None:
    """Use ``CoalescingCycle`` for the connections this process accepts from now on."""
    httptools_impl.RequestResponseCycle = CoalescingCycle  # type: ignore[misc]
