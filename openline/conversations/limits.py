"""Token-bucket rate limits, shared by every server process through Redis when there is one.

A named limiter (``RateLimiter(burst, rate, name="livechat-start")``) keeps its buckets in
Redis whenever the default cache is Redis (``REDIS_URL``), so every process and host draws
from one bucket per key: 20 chat starts per IP means 20 in total, whichever process answers.
Each check is one round trip (a small Lua script, GCRA by Redis' own clock, the bucket
expiring once it is full again); ``aallow_all`` asks several buckets in that one round trip. Without Redis, and while Redis is
unreachable, buckets live in this process: a request is never failed because Redis is down,
only counted per process until Redis answers again (checked at most every few seconds, so an
outage costs one short timeout per process, not one per request). ``allow`` waits for Redis
in the calling thread (fine in a sync view: one loopback round trip); websocket consumers may
``await limiter.aallow(key)`` instead, which does not hold up the event loop meanwhile.

A limiter without a name counts in this process only. That is right for the frame limit,
whose key is a connection's channel name: one connection lives in one process, and checking
every frame needs no round trip.

Limits are tuned as "burst/per_second" (e.g. "10/2"); the frame limit per connection with
OPENLINE_LIVECHAT_RATE_FRAMES (its name predates the console socket).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from django.utils.module_loading import import_string
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
# A rate check sits on the request path (and on the websocket's event loop): fail fast.
REDIS_TIMEOUT = 0.5
# After a failure, count in the process for this long before asking Redis again.
REDIS_RETRY_AFTER = 5.0

# GCRA (the generic cell rate algorithm): a bucket is one number, the time at which it is full
# again ("theoretical arrival time", microseconds by Redis' own clock, since hosts' clocks may
# differ). An event is allowed while that time is at most burst - 1 intervals ahead of now; it
# pushes the time one interval on. Same answers as a token bucket; a missing key is a full one.
# Several buckets are checked in order in one call (one round trip), as ``a and b`` would: the
# first that refuses stops the check, and the buckets after it are not touched.
GCRA_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local full_at = tonumber(redis.call('GET', KEYS[i]))
  if full_at == nil or full_at < now then full_at = now end
  if full_at - now > tolerance then return 0 end
  full_at = full_at + interval
  redis.call('SET', KEYS[i], string.format('%d', full_at),
    'PX', math.ceil((full_at - now) / 1000) + 1000)
end
return 1
"""


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


class _SharedStore:
    """The Redis behind the default cache, with a pause after each failure."""

    def __init__(self) -> None:
        self._clients: dict[str, redis.Redis] = {}
        # Asynchronous clients belong to the event loop that made them.
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, redis.asyncio.Redis]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._down_until: dict[str, float] = {}  # Redis URL -> when to ask it again
        self._script_sha = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis' script id

    def target(self) -> tuple[str, str] | None:
        """Return the Redis URL and key prefix to count with, or None to count in this process."""
        config = settings.CACHES.get("default", {})
        if not _is_redis(str(config.get("BACKEND", ""))):
            return None
        location = config["LOCATION"]
        if isinstance(location, list | tuple):
            location = location[0]
        url = str(location).split(",")[0]  # the first server is the one Django writes to
        down_until = self._down_until.get(url)
        if down_until is not None and time.monotonic() < down_until:
            return None
        return url, str(config.get("KEY_PREFIX", ""))

    def client(self, url: str) -> redis.Redis:
        """Return this process's client for ``url`` (thread-safe, pooled)."""
        client = self._clients.get(url)
        if client is None:
            with self._lock:
                client = self._clients.get(url) or redis.Redis.from_url(url, **_CLIENT_OPTIONS)
                self._clients[url] = client
        return client

    def async_client(self, url: str) -> redis.asyncio.Redis:
        """Return the running event loop's client for ``url``."""
        per_loop = self._async_clients.setdefault(asyncio.get_running_loop(), {})
        client = per_loop.get(url)
        if client is None:
            client = per_loop[url] = redis.asyncio.Redis.from_url(url, **_ASYNC_CLIENT_OPTIONS)
        return client

    def _args(self, buckets: list[tuple[str, float, float]]) -> tuple:
        keys: list[str] = []
        limits: list[str] = []
        for key, burst, rate in buckets:
            interval = 1_000_000 / rate  # microseconds per token
            keys.append(key)
            limits += [str(round(interval)), str(round((burst - 1) * interval))]
        return (len(keys), *keys, *limits)

    def take(self, url: str, key: str, burst: float, rate: float) -> bool:
        """Take a token from the shared bucket ``key``; raise ``redis.RedisError`` on failure."""
        client, args = self.client(url), self._args([(key, burst, rate)])
        try:
            return bool(client.evalsha(self._script_sha, *args))
        except redis.exceptions.NoScriptError:
            return bool(client.eval(GCRA_SCRIPT, *args))

    async def atake(self, url: str, buckets: list[tuple[str, float, float]]) -> bool:
        """Take a token from each shared bucket ``(key, burst, rate)`` in order, in one round
        trip, without blocking the event loop; stop at the first that refuses."""
        client, args = self.async_client(url), self._args(buckets)
        try:
            return bool(await client.evalsha(self._script_sha, *args))
        except redis.exceptions.NoScriptError:
            return bool(await client.eval(GCRA_SCRIPT, *args))

    def failed(self, url: str, exc: Exception) -> None:
        """Count in this process for a while; say so once per outage."""
        if url not in self._down_until:
            logger.warning(
                "rate limits: Redis unreachable (%s); counting in this process",
                type(exc).__name__,
            )
        self._down_until[url] = time.monotonic() + REDIS_RETRY_AFTER

    def recovered(self, url: str) -> None:
        """Count shared again (logged once, when an outage ends)."""
        if self._down_until and self._down_until.pop(url, None) is not None:
            logger.warning("rate limits: Redis answers again; counting shared")


_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": REDIS_TIMEOUT,
    "socket_timeout": REDIS_TIMEOUT,
    "retry": Retry(NoBackoff(), 0),
}
_ASYNC_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": REDIS_TIMEOUT,
    "socket_timeout": REDIS_TIMEOUT,
    "retry": AsyncRetry(NoBackoff(), 0),
}


@functools.cache
def _is_redis(backend: str) -> bool:
    """Whether the cache backend at this dotted path keeps its data in Redis (or a subclass)."""
    try:
        return issubclass(import_string(backend), RedisCache)
    except ImportError:
        return False


_STORE = _SharedStore()


class RateLimiter:
    """Allow ``burst`` events at once and ``rate`` per second after that, per key.

    ``name`` shares the buckets between processes through Redis (when the cache is Redis);
    without it the buckets are this process's own.
    """

    def __init__(
        self, burst: float, rate: float, max_keys: int = 50_000, *, name: str | None = None
    ):
        self.burst = burst
        self.rate = rate
        self.max_keys = max_keys
        self.name = name
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._used_shared = False
        _EVERY.add(self)

    def allow(self, key: str, now: float | None = None) -> bool:
        """Take one token for ``key``; False when the key is over its limit."""
        if self.name is not None and now is None and (target := _STORE.target()) is not None:
            url, prefix = target
            try:
                allowed = _STORE.take(url, self._shared_key(prefix, key), *self._limit)
            except redis.RedisError as exc:
                _STORE.failed(url, exc)
            else:
                _STORE.recovered(url)
                self._used_shared = True
                return allowed
        return self._allow_here(key, time.monotonic() if now is None else now)

    async def aallow(self, key: str) -> bool:
        """``allow`` for websocket consumers: waits for Redis without blocking the event loop."""
        return await aallow_all([(self, key)])

    @property
    def _limit(self) -> tuple[float, float]:
        return self.burst, self.rate

    def _shared_key(self, prefix: str, key: str) -> str:
        if len(key) > 100:  # any client-chosen key stays a short Redis key
            key = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        # The limit is part of the key, so changing it starts fresh buckets.
        return f"{prefix}:rl:{self.name}:{self.burst:g}/{self.rate:g}:{key}"

    def _allow_here(self, key: str, now: float) -> bool:
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

    def reset(self) -> None:
        """Refill every bucket, in this process and (for tests) this limiter's shared ones."""
        self.buckets.clear()
        if not self._used_shared:
            return
        self._used_shared = False
        target = _STORE.target()
        if target is None:
            return
        url, prefix = target
        try:
            client = _STORE.client(url)
            keys = list(client.scan_iter(match=self._shared_key(prefix, "*"), count=1000))
            if keys:
                client.delete(*keys)
        except redis.RedisError as exc:
            _STORE.failed(url, exc)


_EVERY: weakref.WeakSet[RateLimiter] = weakref.WeakSet()


async def aallow_all(checks: list[tuple[RateLimiter, str]]) -> bool:
    """Take one token from each ``(limiter, key)`` in order, as ``a.allow(x) and b.allow(y)``.

    When every limiter is named and Redis answers, all buckets are asked in one round trip
    (one script call); the first bucket that refuses stops the check, and later buckets keep
    their tokens. While Redis is down (or for unnamed limiters) each bucket counts in this
    process, in the same order with the same stop.
    """
    if (
        all(limiter.name is not None for limiter, _ in checks)
        and (target := _STORE.target()) is not None
    ):
        url, prefix = target
        buckets = [(limiter._shared_key(prefix, key), *limiter._limit) for limiter, key in checks]
        try:
            allowed = await _STORE.atake(url, buckets)
        except redis.RedisError as exc:
            _STORE.failed(url, exc)
        else:
            _STORE.recovered(url)
            for limiter, _ in checks:
                limiter._used_shared = True
            return allowed
    now = time.monotonic()
    return all(limiter._allow_here(key, now) for limiter, key in checks)


# Per connection by nature (the key is the connection's channel name): counted in the process.
FRAMES_PER_CONNECTION = RateLimiter(*rate_from_env("OPENLINE_LIVECHAT_RATE_FRAMES", "40/10"))
