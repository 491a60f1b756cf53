"""Django's Redis cache, made so that a Redis outage never fails a request.

Openline's cache holds only what it can do without: "at most one sealing run per second"
markers, alert flags it re-checks in the database, counters with fallbacks of their own.
When Redis is down or hangs (settings give it 1 s socket timeouts):

* reads (``get``, ``get_many``, ``has_key``) miss;
* writes (``set``, ``add``, ``delete``, ``touch`` ...) are skipped; ``add`` answers True, so
  a "once per window" marker lets the work happen rather than never;
* counters (``incr``, ``decr``) raise, so the throttles (accounts/throttle.py,
  api/ratelimit.py) count in their process instead, as they already do for any cache error.

After a failure Redis is not tried again for ``RETRY_AFTER`` seconds: a hung Redis costs one
timeout per process per second, not one per request.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

RETRY_AFTER = 1.0
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class CacheUnavailable(RedisConnectionError):
    """Raised by counters while Redis is known to be down (callers fall back)."""


class ResilientRedisCache(RedisCache):
    """``RedisCache`` that misses, skips or raises ``CacheUnavailable`` while Redis is down."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._down_until = 0.0
        self._lock = threading.Lock()

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            if time.monotonic() >= self._down_until:
                logger.warning("cache: Redis unreachable (%s)", type(exc).__name__)
            self._down_until = time.monotonic() + RETRY_AFTER

    def _down(self) -> bool:
        return time.monotonic() < self._down_until

    def _safe(self, name: str, fallback: Any, *args: Any, **kwargs: Any) -> Any:
        if self._down():
            return fallback
        try:
            return getattr(super(), name)(*args, **kwargs)
        except UNREACHABLE as exc:
            self._failed(exc)
            return fallback

    def get(self, key, default=None, version=None):
        return self._safe("get", default, key, default, version)

    def get_many(self, keys, version=None):
        return self._safe("get_many", {}, keys, version)

    def has_key(self, key, version=None):
        return self._safe("has_key", False, key, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._safe("add", True, key, value, timeout, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._safe("set", None, key, value, timeout, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._safe("set_many", [], data, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._safe("touch", False, key, timeout, version)

    def delete(self, key, version=None):
        return self._safe("delete", False, key, version)

    def delete_many(self, keys, version=None):
        return self._safe("delete_many", None, keys, version)

    def incr(self, key, delta=1, version=None):
        if self._down():
            raise CacheUnavailable("Redis is unreachable")
        try:
            return super().incr(key, delta, version)
        except UNREACHABLE as exc:
            self._failed(exc)
            raise
