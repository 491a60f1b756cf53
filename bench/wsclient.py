"""A light websocket client for connection storms: raw asyncio protocols, frames by hand.

A ``websockets`` client costs about as much CPU per connection as the server it measures, so a
storm driven by it mostly measures the client. This one writes a pre-built handshake, checks the
``101`` status line, sends one pre-built masked text frame and parses only frame headers: a few
tens of microseconds per connection. It answers pings, and reads the first text frame as JSON.

Client frames must be masked (RFC 6455 §5.3); the key is a fixed ``00000000``, which leaves the
payload as it is. Servers unmask with whatever key the frame carries, so that costs them the
same as a random key, and the bench keeps its CPU for the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Origin: {origin}\r\nUser-Agent: openline-bench\r\n\r\n"
)


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """Encode one final, masked client frame (mask key 0: the payload stays as it is)."""
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    elif size < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def handshake(*, host: str, path: str, origin: str) -> bytes:
    return HANDSHAKE.format(host=host, path=path, origin=origin).encode("latin-1")


class Connection(asyncio.Protocol):
    """One websocket: handshake, then ``first`` frame, then wait for the first text frame."""

    def __init__(self, request: bytes, first: bytes, answered: asyncio.Future):
        self.request = request
        self.first = first
        self.answered = answered
        self.buffer = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.on_text: Callable[[bytes], None] | None = None
        self.closed_code: int | None = None
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                status = bytes(self.buffer[:40]).split(b"\r\n")[0]
                self._fail(ConnectionError(status.decode("latin-1", "replace")))
                return
            del self.buffer[: end + 4]
            self.upgraded = True
            self.transport.write(frame(self.first))
        self._frames()

    def _frames(self) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            opcode, size, offset = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if size == 126:
                if len(buf) < 4:
                    return
                size, offset = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size, offset = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < offset + size:
                return
            payload = bytes(buf[offset : offset + size])
            del buf[: offset + size]
            if opcode == 0x1:
                self._text(payload)
            elif opcode == 0x8:
                self.closed_code = int.from_bytes(payload[:2], "big") if payload else 1005
                self._fail(ConnectionError(f"closed by the server with {self.closed_code}"))
                self.transport.close()
                return
            elif opcode == 0x9:
                self.transport.write(frame(payload, 0xA))

    def _text(self, payload: bytes) -> None:
        if not self.answered.done():
            self.answered.set_result(payload)
        elif self.on_text is not None:
            self.on_text(payload)

    def _fail(self, exc: Exception) -> None:
        if not self.answered.done():
            self.answered.set_exception(exc)

    def connection_lost(self, exc) -> None:
        self.lost = True
        self._fail(exc or ConnectionError("connection lost"))

    def send(self, payload: bytes) -> None:
        self.transport.write(frame(payload))


@dataclass
class StormResult:
    opened: int = 0
    failed: int = 0
    retried: int = 0
    started: float = 0.0  # time.time() of the first attempt
    finished: float = 0.0  # time.time() when the last socket was ready
    latencies: list[float] = field(default_factory=list)  # seconds, connect → first frame
    missed: int = 0  # messages handed back by resynchronisation
    errors: dict[str, int] = field(default_factory=dict)


async def storm(
    *,
    host: str,
    port: int,
    path: str,
    firsts: list[bytes],
    concurrency: int,
    origin: str = "http://127.0.0.1",
    expect: str = "ready",
    attempts: int = 3,
) -> tuple[StormResult, list[Connection]]:
    """Open one socket per pre-built first frame, as fast as the server answers them."""
    loop = asyncio.get_running_loop()
    request = handshake(host=f"{host}:{port}", path=path, origin=origin)
    result = StormResult(started=time.time())
    gate = asyncio.Semaphore(concurrency)
    held: list[Connection] = []

    async def one(first: bytes) -> None:
        async with gate:
            for attempt in range(attempts):
                began = time.perf_counter()
                answered = loop.create_future()
                conn = Connection(request, first, answered)
                try:
                    await loop.create_connection(lambda: conn, host, port)  # noqa: B023
                    payload = await asyncio.wait_for(answered, 60)
                    data = json.loads(payload)
                    if data.get("type") != expect:
                        kind = str(data.get("type"))[:20]
                        code = f" {str(data.get('code'))[:20]}" if data.get("code") else ""
                        raise ConnectionError(f"answered {kind}{code}")
                except (OSError, ConnectionError, TimeoutError, ValueError) as exc:
                    name = str(exc)[:60] or type(exc).__name__
                    result.errors[name] = result.errors.get(name, 0) + 1
                    if conn.transport is not None:
                        conn.transport.abort()
                    if attempt + 1 < attempts:
                        result.retried += 1
                        await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                result.latencies.append(time.perf_counter() - began)
                result.missed += len(data.get("messages") or ())
                held.append(conn)
                return
            result.failed += 1

    await asyncio.gather(*(one(first) for first in firsts))
    result.finished = time.time()
    result.opened = len(held)
    return result, held


async def pings(held: list[Connection], *, sample: int = 200, timeout: float = 10) -> int:
    """Send ``ping`` on a sample of held sockets; return how many answered ``pong``."""
    loop = asyncio.get_running_loop()
    waiting = []
    for conn in held[:sample]:
        answer = loop.create_future()
        conn.on_text = lambda payload, answer=answer: (  # type: ignore[misc]
            answer.done() or answer.set_result(payload)
        )
        conn.send(b'{"type":"ping"}')
        waiting.append(answer)
    if not waiting:
        return 0
    done, _ = await asyncio.wait(waiting, timeout=timeout)
    return sum(1 for f in done if not f.exception() and b'"pong"' in f.result())


def close_all(held: list[Connection]) -> None:
    """Close every held socket with a close frame (the server sees a normal disconnect)."""
    for conn in held:
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(frame(b"\x03\xe8", 0x8))
            conn.transport.close()
