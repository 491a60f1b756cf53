"""Token-bucket rate limits for websocket frames, shared by every socket (widget and console).

Buckets live in the server process: cheap enough to check on every frame with
no round trip. With several processes a client gets at most one allowance per
process it is connected to, which still stops floods from one connection.
Limits can be tuned as "burst/per_second" (e.g. "10/2"); the frame limit per
connection with OPENLINE_LIVECHAT_RATE_FRAMES (its name predates the console socket).
"""

from __future__ import annotations

import os
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass


def rate_from_env(name: str, default: str) -> tuple[float, float]:
    """Read a "burst/per_second" limit from the environment variable ``name``; fail loudly."""
    raw = os.environ.get(name, default)
    try:
        burst, rate = (float(part) for part in raw.split("/", 1))
    except ValueError:
        raise RuntimeError(f"{name} must look like 'burst/per_second', got {raw!r}") from None
    if burst < 1 or rate <= 0:
        raise RuntimeError(f"{name} needs a burst of at least 1 and a positive rate, got {raw!r}")
    return burst, rate


def every_limiter() -> list[RateLimiter]:
    """Return every rate limiter of this process, whichever face made it (tests reset them)."""
    return list(_EVERY)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Allow ``burst`` events at once and ``rate`` per second after that, per key."""

    def __init__(self, burst: float, rate: float, max_keys: int = 50_000):
        self.burst = burst
        self.rate = rate
        self.max_keys = max_keys
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()
        _EVERY.add(self)

    def allow(self, key: str, now: float | None = None) -> bool:
        """Take one token for ``key``; False when the key is over its limit."""
        now = time.monotonic() if now is None else now
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(self.burst, now)
            if len(self.buckets) > self.max_keys:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(key)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


_EVERY: weakref.WeakSet[RateLimiter] = weakref.WeakSet()

FRAMES_PER_CONNECTION = RateLimiter(*rate_from_env("OPENLINE_LIVECHAT_RATE_FRAMES", "40/10"))
