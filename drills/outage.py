"""Shared parts of the outage drills (database, Redis, read-only / full): load and probes.

``Load`` runs concurrent clients against a server: accepted widget starts (each with its own
``Idempotency-Key``) and widget page views, recording when each request left, when its answer
came and what it was. ``ReadyPoller`` asks ``/readyz`` every 0.2 s and records each answer.
The registry checks (``snapshot``, ``half_written``, ``acknowledged_stored``) are the crash
drill's.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field

import httpx

from drills.harness import LiveChatSeed, start_body, widget_start_async
from drills.registry_checks import Attempt

OUTAGE_CODE = "unavailable"
BACK_OFF = 0.25  # seconds a client waits after a 503


@dataclass
class Sample:
    kind: str  # "start" or "page"
    sent: float
    done: float
    status: int | None
    error: str = ""
    retry_after: str | None = None
    code: str = ""  # the body's "error" (widget JSON) or "code" (API)
    attempt: Attempt | None = None

    @property
    def seconds(self) -> float:
        return self.done - self.sent


@dataclass
class Load:
    """Concurrent clients posting starts and loading the widget page until ``stop()``."""

    url: str
    seed: LiveChatSeed
    run: str
    clients: int = 8
    pause: float = 0.02
    samples: list[Sample] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    _stopping: bool = False

    def new_attempt(self) -> Attempt:
        i = len(self.attempts)
        body = start_body(self.seed, text=f"Outage drill {self.run} #{i}: is my order shipped?")
        body["client_id"] = f"outage-{self.run}-{i}"
        attempt = Attempt(i, f"outage-{self.run}-{i}-{secrets.token_hex(8)}", body)
        self.attempts.append(attempt)
        return attempt

    async def _one(self, client: httpx.AsyncClient, kind: str) -> None:
        attempt = self.new_attempt() if kind == "start" else None
        sent = time.monotonic()
        try:
            if attempt is not None:
                response = await widget_start_async(
                    client, self.url, self.seed, attempt.body, idempotency_key=attempt.key
                )
            else:
                response = await client.get(f"{self.url}/widget/{self.seed.code}/frame")
        except httpx.HTTPError as exc:
            self.samples.append(
                Sample(kind, sent, time.monotonic(), None, type(exc).__name__, attempt=attempt)
            )
            if attempt is not None:
                attempt.error = type(exc).__name__
            return
        sample = Sample(
            kind,
            sent,
            time.monotonic(),
            response.status_code,
            retry_after=response.headers.get("Retry-After"),
            attempt=attempt,
        )
        if response.headers.get("Content-Type", "").startswith("application/json"):
            with contextlib.suppress(ValueError):
                body = response.json()
                sample.code = str(body.get("error") or body.get("code") or "")
                if attempt is not None:
                    attempt.status = response.status_code
                    attempt.answer = body if response.status_code == 201 else None
        self.samples.append(sample)

    async def _client(self, index: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            turn = index
            while not self._stopping:
                await self._one(client, "start" if turn % 2 == 0 else "page")
                turn += 1
                # Told to come back later, a client waits a little, as the widget does.
                refused = self.samples and self.samples[-1].status == 503
                await asyncio.sleep(BACK_OFF if refused else self.pause)

    async def run_until(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._client(i)) for i in range(self.clients)]
        await stop.wait()
        self._stopping = True
        await asyncio.gather(*tasks)


@dataclass
class ReadyPoller:
    """``/readyz`` every ``every`` seconds: (time, status) pairs."""

    url: str
    every: float = 0.2
    answers: list[tuple[float, int | None]] = field(default_factory=list)

    async def run_until(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
                try:
                    status: int | None = (await client.get(self.url + "/readyz")).status_code
                except httpx.HTTPError:
                    status = None
                self.answers.append((time.monotonic(), status))
                await asyncio.sleep(self.every)

    def first(self, status: int, after: float) -> float | None:
        """Seconds from ``after`` to the first answer ``status`` sent after it."""
        for at, got in self.answers:
            if at >= after and got == status:
                return at - after
        return None


def first_after(samples: list[Sample], after: float, status: int) -> float | None:
    """Seconds from ``after`` to the first answer ``status`` that came after it."""
    times = [s.done - after for s in samples if s.done >= after and s.status == status]
    return min(times) if times else None


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
