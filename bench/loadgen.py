"""A small HTTP/1.1 load generator that does not starve the server it measures.

An httpx client tops out near 500 requests/s on this machine and competes with the server for
the same two cores; this one writes pre-built requests on keep-alive connections from asyncio
and parses only the status line and Content-Length, so it costs a fraction of a core.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    sent: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, pct: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def build_request(
    *, host: str, port: int, path: str, body: bytes, headers: dict[str, str], method: str = "POST"
) -> bytes:
    """Encode one keep-alive HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _worker(host, port, next_request: Callable[[], bytes | None], result: LoadResult):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            request = next_request()
            if request is None:
                return
            started = time.perf_counter()
            try:
                writer.write(request)
                status = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] += 1
            result.sent += 1
    finally:
        writer.close()


def run_load(
    *, host: str, port: int, requests: Sequence[bytes], concurrency: int = 16
) -> LoadResult:
    """Send every request once over ``concurrency`` keep-alive connections; measure the rate."""
    result = LoadResult()
    iterator = iter(requests)

    def next_request() -> bytes | None:
        return next(iterator, None)

    async def main() -> None:
        started = time.perf_counter()
        await asyncio.gather(
            *(_worker(host, port, next_request, result) for _ in range(concurrency))
        )
        result.seconds = time.perf_counter() - started

    asyncio.run(main())
    return result
